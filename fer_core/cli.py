"""Command line: train, finalize, export, evaluate, predict, models, dataset (fer_core/dataset_cli.py), video
(fer_core/video_cli.py).

Every FerError (bad file, bad dataset, bad model folder) is printed as one line naming the file
and the problem, with exit status 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fer_core import dataset_cli, video_cli
from fer_core.evaluation import TTA_MODES

if TYPE_CHECKING:
    from fer_core.training import TrainConfig

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a zoo architecture into a run/model folder")
    parser.add_argument("--arch", required=True, help="architecture name (see `models --zoo`)")
    parser.add_argument("--data", required=True, help="training data: image-folder root or FER2013 CSV")
    parser.add_argument("--val", help="validation data (image folder or CSV); default: 10%% held out of --data")
    parser.add_argument("--out", required=True, help="run folder, e.g. models/NAME")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--optimizer", choices=("sgd", "adam"))
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--warmup-epochs", type=float, default=2.0)
    parser.add_argument("--patience", type=int, default=20, help="early stopping patience in epochs")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--photo-augment", action="store_true",
                        help="also jitter exposure, contrast, noise, blur and JPEG quality (faces from photos and webcams)")
    parser.add_argument("--train-usage", default="Training", help="CSV Usage value(s) for training, comma-separated")
    parser.add_argument("--val-usage", default="PublicTest", help="CSV Usage value(s) for validation")
    parser.add_argument("--limit", type=int, help="use only N training images (quick experiments)")
    parser.add_argument("--weights", help="pretrained base weights file (mobilenet_transfer); never downloaded")
    parser.add_argument("--init-from", help="start from this model's weights (model folder or .keras): fine-tuning")
    parser.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (e.g. 0.2); 0 turns it off")
    parser.add_argument("--mix", action="append", default=[], metavar="PATH",
                        help="more training data added to --data (image folder, CSV or dataset root); repeatable")
    parser.add_argument("--teacher", help="distil from this model (folder or registry name): its TTA predictions are soft targets")
    parser.add_argument("--teacher-tta", choices=("auto", *TTA_MODES), default="auto",
                        help="the teacher's test-time augmentation for its targets (auto: its card's best)")
    parser.add_argument("--distill-alpha", type=float, default=0.8, help="weight of the teacher's targets (0-1)")
    parser.add_argument("--distill-temperature", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--average-last", type=int, default=0, metavar="N",
                        help="also keep the mean weights of the last N epochs (checkpoints/average.keras); "
                             "the finished run serves them (finalize --checkpoint average)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-finalize", action="store_true", help="skip writing model.keras/card/evaluation at the end")
    parser.add_argument("--register", nargs="?", const="", metavar="NAME",
                        help="after finalizing, copy the model into the registry (as NAME, default: the run's name)")
    parser.add_argument("--accelerator", action="store_true",
                        help="GPU machine without TensorFlow: Keras on JAX (KERAS_BACKEND=jax), augmentation on the "
                        "GPU; finalize the run afterwards on a machine with TensorFlow")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="with --accelerator: stop between epochs before this many seconds have passed")
    _add_tflite_weights(parser)


def train_argv(config: TrainConfig, resume: bool = False, register: str | None = None) -> list[str]:
    """The `python -m fer_core train` arguments that reproduce `config` (what the app's
    background runner starts, so a page and a terminal run the same command)."""
    if resume:
        argv = ["train", "--resume", "--arch", config.architecture, "--data", config.train_data,
                "--out", config.out, "--epochs", str(config.epochs), "--patience", str(config.patience)]
    else:
        argv = ["train", "--arch", config.architecture, "--data", config.train_data, "--out", config.out]
        options = {
            "--val": config.val_data,
            "--epochs": config.epochs,
            "--batch-size": config.batch_size,
            "--lr": config.learning_rate,
            "--optimizer": config.optimizer,
            "--weight-decay": config.weight_decay,
            "--label-smoothing": config.label_smoothing,
            "--warmup-epochs": config.warmup_epochs,
            "--patience": config.patience,
            "--precision": config.precision,
            "--train-usage": ",".join(config.train_usage),
            "--val-usage": ",".join(config.val_usage),
            "--limit": config.limit,
            "--weights": config.weights,
            "--init-from": config.init_from,
            "--mixup": config.mixup,
            "--teacher": config.teacher,
            "--teacher-tta": config.teacher_tta,
            "--distill-alpha": config.distill_alpha,
            "--distill-temperature": config.distill_temperature,
            "--seed": config.seed,
            "--average-last": config.average_last or None,
        }
        for flag, value in options.items():
            if value is not None:
                argv += [flag, str(value)]
        for path in config.mix_data:
            argv += ["--mix", path]
        if not config.augment:
            argv.append("--no-augment")
        if config.photo_augment:
            argv.append("--photo-augment")
    if register is not None:
        argv += ["--register", register] if register else ["--register"]
    return argv


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from fer_core.training import TrainConfig

    return TrainConfig(
        architecture=args.arch,
        train_data=args.data,
        val_data=args.val,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        warmup_epochs=args.warmup_epochs,
        patience=args.patience,
        precision=args.precision,
        augment=not args.no_augment,
        photo_augment=args.photo_augment,
        train_usage=[usage.strip() for usage in args.train_usage.split(",")],
        val_usage=[usage.strip() for usage in args.val_usage.split(",")],
        limit=args.limit,
        weights=args.weights,
        init_from=args.init_from,
        mixup=args.mixup,
        mix_data=list(args.mix),
        teacher=str(_resolve_model_dir(args.teacher)) if args.teacher else None,
        teacher_tta=args.teacher_tta,
        distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature,
        seed=args.seed,
        average_last=args.average_last,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    if args.accelerator:
        from fer_core.accelerated import train_accelerated
        from fer_core.errors import FerError

        if args.resume or args.register is not None:
            raise FerError("--accelerator runs start afresh and are finalized (and registered) on the CPU machine; "
                           "finish a stopped one there with train --resume")
        result = train_accelerated(config_from_args(args), time_limit=args.time_limit)
        print(f"{result.run_dir}: {result.epochs_done} epochs, best val accuracy {result.best_val_accuracy:.4f} "
              f"at epoch {result.best_epoch}; next, where TensorFlow is: python -m fer_core finalize --run {result.run_dir}")
        return 0
    from fer_core.runs import run_training_command

    return run_training_command(
        config_from_args(args), resume=args.resume, finalize=not args.no_finalize, register=args.register,
        tflite_weights=args.tflite_weights,
    )


def _add_finalize(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("finalize", help="turn a (stopped) training run into a model folder")
    parser.add_argument("--run", required=True, help="the run folder given to train --out")
    from fer_core.card import CHECKPOINTS  # the card module is light: no TensorFlow at parse time

    parser.add_argument("--checkpoint", choices=CHECKPOINTS,
                        help="best: the epoch with the best val accuracy; last: the final epoch; average: the mean "
                             "weights of the last epochs (train --average-last). Default: average when the run "
                             "kept one, else best")
    _add_tflite_weights(parser)


def _add_tflite_weights(parser: argparse.ArgumentParser) -> None:
    from fer_core.card import TFLITE_WEIGHTS  # the card module is light: no TensorFlow at parse time

    parser.add_argument("--tflite-weights", choices=tuple(TFLITE_WEIGHTS), default="int8",
                        help="model.tflite's weights: int8 (dynamic range, the default) or float32 "
                             "(for small networks that run as fast in float32 and lose accuracy in int8)")


def _cmd_finalize(args: argparse.Namespace) -> int:
    from fer_core.export import finalize_run

    card = finalize_run(args.run, checkpoint=args.checkpoint, tflite_weights=args.tflite_weights)
    print(json.dumps(card.metrics, indent=2))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="rebuild a model folder's model.tflite and evaluate it again")
    parser.add_argument("--model", required=True, help="model folder or registry name")
    _add_tflite_weights(parser)


def _cmd_export(args: argparse.Namespace) -> int:
    from fer_core.export import reexport_model

    card = reexport_model(_resolve_model_dir(args.model), args.tflite_weights)
    print(json.dumps(card.metrics, indent=2))
    return 0


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ensemble", help="serve several trained networks as one model (their mean probability)")
    parser.add_argument("members", nargs="+", help="member model folders or registry names (two or more)")
    parser.add_argument("--out", required=True, help="the new model folder (e.g. runs/my_ensemble); register it with models --register")
    parser.add_argument("--tta", default="none,flip",
                        help="test-time augmentations to try on validation, comma-separated (default none,flip: "
                             "crops would cost 10-12 passes a face for every member)")
    parser.add_argument("--val-data", help="validation faces (default: the first member's)")
    parser.add_argument("--keep-keras", action="store_true",
                        help="keep model.keras (all members' float32 weights) beside model.tflite")
    _add_tflite_weights(parser)


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from fer_core.ensemble import make_ensemble
    from fer_core.errors import FerError
    from fer_core.evaluation import TTA_MODES

    modes = tuple(mode.strip() for mode in args.tta.split(",") if mode.strip())
    unknown = [mode for mode in modes if mode not in TTA_MODES]
    if unknown or not modes:
        raise FerError(f"--tta: unknown mode(s) {', '.join(unknown) or '(none given)'}; use {', '.join(TTA_MODES)}")
    members = [_resolve_model_dir(member) for member in args.members]
    card = make_ensemble(members, args.out, tta_modes=modes, tflite_weights=args.tflite_weights,
                         keep_keras=args.keep_keras, val_data=args.val_data)
    print(json.dumps(card.metrics, indent=2))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a model folder on cropped faces (image folder or CSV)")
    parser.add_argument("--model", help="model folder (default: the registry's default model)")
    parser.add_argument("--data", required=True, help="image-folder root <root>/<class>/* or FER2013 CSV")
    parser.add_argument("--usage", help="CSV Usage value(s), comma-separated, e.g. PrivateTest")
    parser.add_argument("--tta", choices=("auto", *TTA_MODES), default="auto",
                        help="test-time augmentation; auto: the one the card found best on validation")
    parser.add_argument("--keras", action="store_true", help="evaluate model.keras instead of the TFLite export")
    parser.add_argument("--json", dest="json_path", help="write the report to this JSON file")
    parser.add_argument("--store", action="store_true",
                        help="also keep the report and every face's prediction beside the model (the Training report page shows it)")


def _resolve_model_dir(name_or_path: str | None) -> Path:
    from fer_core.registry import ModelRegistry

    if name_or_path is None:
        return ModelRegistry().default().path
    path = Path(name_or_path)
    if path.exists() or os.sep in name_or_path:
        return path
    return ModelRegistry().get(name_or_path).path


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate
    from fer_core.inference import EmotionClassifier

    classifier = EmotionClassifier(_resolve_model_dir(args.model), prefer_tflite=not args.keras)
    usages = [usage.strip() for usage in args.usage.split(",")] if args.usage else None
    dataset = load_dataset(args.data, usages, image_size=classifier.input_size)
    tta = classifier.best_tta if args.tta == "auto" else args.tta
    if args.store:
        from fer_core.reports import evaluate_and_store

        stored = evaluate_and_store(classifier.model_dir, dataset, tta, usages, classifier=classifier)
        report = stored.report
        print(f"stored as {stored.slug} in {classifier.model_dir / 'evaluations'}")
    else:
        report = evaluate(classifier.predict_faces, dataset, tta=tta, model=classifier.card.name)
    report.extra = {**report.extra, "usage": usages, "backend": classifier.backend}
    print(f"model {classifier.card.name} ({classifier.backend}) on {dataset.source}"
          f"{' [' + ','.join(usages) + ']' if usages else ''}")
    print(report.table())
    if args.json_path:
        print(f"wrote {report.write_json(args.json_path)}")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", help="find and classify every face in images")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--model", help="model folder or registry name (default: the default model)")
    parser.add_argument("--detector", default="blazeface", help="face detector: blazeface or haar")
    parser.add_argument("--min-confidence", type=float, default=0.5)
    parser.add_argument("--min-face", type=int, default=20, help="minimum face size in pixels")
    parser.add_argument("--whole", action="store_true", help="classify each whole image as one face")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cmd_predict(args: argparse.Namespace) -> int:
    from fer_core.detection import DetectorSettings, create_detector
    from fer_core.errors import ImageError
    from fer_core.image_io import decode_image
    from fer_core.inference import EmotionClassifier, EmotionRecognizer

    recognizer = EmotionRecognizer(create_detector(args.detector), EmotionClassifier(_resolve_model_dir(args.model)))
    settings = DetectorSettings(min_confidence=args.min_confidence, min_face_size=args.min_face)
    results, failures = [], 0
    for path in args.images:
        try:
            decoded = decode_image(path)
        except ImageError as error:
            failures += 1
            print(f"error: {error}", file=sys.stderr)
            results.append({"image": path, "error": str(error), "faces": []})
            continue
        if args.whole:
            analysis = recognizer.classify_whole_image(decoded.rgb, tta="auto")
        else:
            analysis = recognizer.analyze(decoded.rgb, settings, tta="auto")
        faces = [face.as_row() for face in analysis.faces]
        results.append({"image": path, "width": analysis.width, "height": analysis.height, "notes": decoded.notes, "faces": faces})
        if not args.json:
            if not faces:
                print(f"{path}: no face found (try --min-face 10, --min-confidence 0.3 or --whole)")
            for face in faces:
                box = f"{face['x']},{face['y']} {face['width']}x{face['height']}"
                print(f"{path}: face {face['face']} at {box}: {face['emotion']} ({face['confidence']:.0%})")
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failures == len(args.images) else 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list registered models (or the zoo's architectures)")
    parser.add_argument("--zoo", action="store_true", help="list the architectures train --arch accepts")
    parser.add_argument("--set-default", metavar="NAME", help="make NAME the default model")
    parser.add_argument("--set-live", metavar="NAME", help="make NAME the live webcam's model")
    parser.add_argument("--register", metavar="RUN", help="copy a finalized run folder into the registry")
    parser.add_argument("--name", help="name for --register (default: the run's name, versioned)")
    parser.add_argument("--speed", action="store_true", help="also time each model on this machine (faces/s at batch 1 and 32)")


def _cmd_models(args: argparse.Namespace) -> int:
    if args.zoo:
        from fer_core import zoo

        for name in zoo.list_models():
            spec = zoo.get_spec(name)
            print(f"{name:<20} input {spec.input_size}x{spec.input_size}  {spec.description}")
        return 0
    from fer_core.registry import ModelRegistry

    registry = ModelRegistry()
    if args.register:
        model = registry.register(args.register, args.name)
        print(f"registered {model.name} in {model.path}")
    if args.set_default:
        registry.set_default(args.set_default)
        print(f"default model: {args.set_default}")
    if args.set_live:
        registry.set_live_default(args.set_live)
        print(f"live webcam model: {args.set_live}")
    models, problems = registry.scan()
    live = registry.live_default().name if models else None
    if models:
        header = f"   {'model':<22} {'architecture':<18} {'MFLOPs':>7} {'1 pass':>7} {'best TTA':>18} {'macro-F1':>8} {'weights':>7}"
        if args.speed:
            header += f" {'faces/s b1':>10} {'b32':>7}"
        print(header)
    for model in models:
        marks = ("*" if model.is_default else " ") + ("L" if model.name == live else " ")
        metrics = model.card.metrics
        best = metrics.get("best_tta", "none")
        best_accuracy = (metrics.get("val_accuracy_by_tta") or {}).get(best)
        line = (
            f"{marks} {model.name:<22} {model.card.architecture:<18} "
            f"{model.card.flops / 1e6 if model.card.flops else float('nan'):>7.1f} "
            f"{_percent(metrics.get('val_accuracy')):>7} {_percent(best_accuracy) + ' ' + best:>18} "
            f"{metrics.get('val_macro_f1', float('nan')):>8.3f} {model.card.tflite_weights:>7}"
        )
        if args.speed:
            from fer_core.inference import EmotionClassifier, faces_per_second

            classifier = EmotionClassifier(model.path)
            line += f" {faces_per_second(classifier, 1):>10,.0f} {faces_per_second(classifier, 32):>7,.0f}"
        print(f"{line}  [{model.path}]")
    if models:
        print("* the default model (photos, evaluate, predict); L the live webcam's model; accuracy on validation")
    for name, problem in problems.items():
        print(f"! {name}: {problem}")
    if not models:
        print(f"no models in {registry.root}")
    return 0


def _percent(value: float | None) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "n/a"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description="Facial emotion recognition engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train, _add_finalize, _add_export, _add_ensemble, _add_evaluate, _add_predict, _add_models, dataset_cli.add_parser, video_cli.add_parser
    ):
        add(sub)
    return parser


COMMANDS = {
    "train": _cmd_train,
    "finalize": _cmd_finalize,
    "export": _cmd_export,
    "ensemble": _cmd_ensemble,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "models": _cmd_models,
    "dataset": dataset_cli.run,
    "video": video_cli.run,
}


def main(argv: list[str] | None = None) -> int:
    from fer_core.errors import FerError

    args = build_parser().parse_args(argv)
    from fer_core.tflite_runtime import native_stderr_silenced

    if not getattr(args, "accelerator", False):  # a GPU machine's JAX-only run has no TensorFlow
        with native_stderr_silenced():
            # TensorFlow's C++ start-up prints oneDNN/CUDA notices that no log-level variable silences
            # in 2.21; every other command needs TensorFlow, so import it here, quietly.
            import tensorflow  # noqa: F401
    try:
        return COMMANDS[args.command](args)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
