"""Every registered model: FLOPs, speed on this machine, validation accuracy, training time.

Reads each model folder's card.json (FLOPs, metrics, seconds per epoch, epochs) and
evaluation.json, and times its served TFLite path here (faces/s at batch 1 and 32);
folders that are training runs without a card yet are listed from their history.csv, and zoo
architectures with no trained folder are listed as such. With --evaluate DATA every model is
re-evaluated on that dataset (image folder or FER2013 CSV, optionally --usage) through its
served TFLite path.

    python benchmarks/bench_zoo.py [--models DIR] [--no-speed] [--evaluate DATA [--usage PrivateTest] [--tta none]]

Prints a table and writes benchmarks/results/zoo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core import zoo  # noqa: E402
from fer_core.card import EVALUATION_FILE, HISTORY_FILE, read_card  # noqa: E402
from fer_core.errors import FerError  # noqa: E402
from fer_core.evaluation import TTA_MODES, EvaluationReport  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402
from fer_core.training import CONFIG_FILE, read_history  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "zoo.json"


def model_row(folder: Path, is_default: bool, is_live: bool, speed: bool) -> dict:
    """What the folder's card and evaluation say about one trained model, and its speed here."""
    card = read_card(folder)
    metrics = card.metrics
    row = {
        "name": card.name,
        "folder": str(folder),
        "default": is_default,
        "live": is_live,
        "architecture": card.architecture,
        "input_size": card.input_size,
        "parameters": card.parameters,
        "mflops": round(card.flops / 1e6, 1) if card.flops else None,
        "teacher": card.teacher.get("name") if card.teacher else None,
        "train_images": card.train_images,
        "epochs_trained": card.epochs_trained,
        "best_epoch": card.best_epoch,
        "seconds_per_epoch": card.seconds_per_epoch,
        "val_accuracy": metrics.get("val_accuracy"),
        "val_accuracy_flip": (metrics.get("val_accuracy_by_tta") or {}).get("flip"),
        "best_tta": metrics.get("best_tta"),
        "val_accuracy_best_tta": (metrics.get("val_accuracy_by_tta") or {}).get(metrics.get("best_tta")),
        "val_macro_f1": metrics.get("val_macro_f1"),
        "keras_float32_val_accuracy": metrics.get("keras_float32_val_accuracy"),
        "status": "finalized" if metrics else "card without metrics (being finalized?)",
    }
    if speed:
        from fer_core.inference import EmotionClassifier, faces_per_second

        classifier = EmotionClassifier(folder)
        row["faces_per_s_batch_1"] = round(faces_per_second(classifier, 1, seconds=2.0))
        row["faces_per_s_batch_32"] = round(faces_per_second(classifier, 32, seconds=2.0))
    if (folder / EVALUATION_FILE).is_file():
        report = EvaluationReport.read_json(folder / EVALUATION_FILE)
        row["evaluation"] = {"n_images": report.n_images, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                             "data": report.data, "recall": {name: values["recall"] for name, values in report.per_class.items()}}
    return row


def run_row(folder: Path, problem: str) -> dict | None:
    """A training run without a usable card: its progress from train_config.json and history.csv."""
    if not (folder / CONFIG_FILE).is_file():
        return None
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    history = read_history(folder / HISTORY_FILE)
    best = max(history, key=lambda row: row["val_accuracy"]) if history else None
    return {
        "name": folder.name,
        "folder": str(folder),
        "default": False,
        "architecture": config.get("architecture"),
        "input_size": zoo.get_spec(config["architecture"]).input_size if config.get("architecture") in zoo.list_models() else None,
        "epochs_trained": len(history),
        "best_epoch": best["epoch"] if best else None,
        "seconds_per_epoch": statistics.median(row["seconds"] for row in history) if history else None,
        "val_accuracy": round(best["val_accuracy"], 4) if best else None,
        "status": f"training run, not finalized ({problem})",
    }


def re_evaluate(rows: list[dict], data: str, usage: str | None, tta: str) -> None:
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate
    from fer_core.inference import EmotionClassifier

    usages = [value.strip() for value in usage.split(",")] if usage else None
    datasets = {}
    for row in rows:
        if row["status"] != "finalized":
            continue
        classifier = EmotionClassifier(row["folder"])
        if classifier.input_size not in datasets:
            datasets[classifier.input_size] = load_dataset(data, usages, image_size=classifier.input_size)
        report = evaluate(classifier.predict_faces, datasets[classifier.input_size], tta=tta, model=row["name"])
        row["re_evaluation"] = {"data": data, "usage": usages, "tta": tta, "n_images": report.n_images,
                                "accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4)}


def fmt(value, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value:,}{suffix}" if isinstance(value, int) else str(value)


def print_table(rows: list[dict], untrained: list[str]) -> None:
    has_re = any("re_evaluation" in row for row in rows)
    head = (f"{'model':<22} {'architecture':<17} {'params':>10} {'MFLOPs':>6} {'faces/s b1':>10} {'b32':>6} {'epochs':>6} {'s/epoch':>7} "
            f"{'val acc':>7} {'best TTA':>18} {'macro-F1':>8}" + (f" {'re-eval acc':>11} {'F1':>6}" if has_re else ""))
    print(head)
    print("-" * len(head))
    for row in rows:
        name = row["name"] + (" *" if row["default"] else "") + (" L" if row.get("live") else "")
        line = (f"{name:<22} {row['architecture'] or '-':<17} {fmt(row.get('parameters')):>10} {fmt(row.get('mflops'), 0):>6} "
                f"{fmt(row.get('faces_per_s_batch_1')):>10} {fmt(row.get('faces_per_s_batch_32')):>6} "
                f"{fmt(row.get('epochs_trained')):>6} {fmt(row.get('seconds_per_epoch'), 0):>7} {fmt(row.get('val_accuracy')):>7} "
                f"{fmt(row.get('val_accuracy_best_tta')) + ' ' + str(row.get('best_tta') or '-'):>18} {fmt(row.get('val_macro_f1')):>8}")
        if has_re:
            again = row.get("re_evaluation", {})
            line += f" {fmt(again.get('accuracy')):>11} {fmt(again.get('macro_f1')):>6}"
        print(line)
        if row["status"] != "finalized":
            print(f"{'':<22} ({row['status']})")
    if untrained:
        print(f"\nzoo architectures with no trained model here: {', '.join(untrained)}")
    print("* default model, L live webcam model; faces/s: served TFLite path on this machine; val acc: on the validation split, "
          "no TTA (as on the webcam); best TTA: the card's, as photos and `evaluate` use it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="models folder (default: the registry's, honouring FER_MODELS_DIR)")
    parser.add_argument("--evaluate", metavar="DATA", help="re-evaluate every model on this image folder or CSV")
    parser.add_argument("--usage", help="CSV Usage value(s) for --evaluate, e.g. PrivateTest")
    parser.add_argument("--tta", choices=TTA_MODES, default="none")
    parser.add_argument("--no-speed", action="store_true", help="skip timing the models on this machine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    registry = ModelRegistry(args.models) if args.models else ModelRegistry()
    models, problems = registry.scan()
    live = registry.live_default().name if models else None
    rows = [model_row(model.path, model.is_default, model.name == live, not args.no_speed) for model in models]
    rows += [row for name, problem in problems.items() if (row := run_row(registry.root / name, problem))]
    trained = {row["architecture"] for row in rows}
    untrained = [name for name in zoo.list_models() if name not in trained]
    if args.evaluate:
        try:
            re_evaluate(rows, args.evaluate, args.usage, args.tta)
        except FerError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print_table(rows, untrained)
    result = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models_dir": str(registry.root),
        "machine": machine_info(),
        "models": rows,
        "untrained_architectures": untrained,
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
