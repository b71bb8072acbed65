"""`python -m fer_core dataset ...`: the custom dataset from the command line.

import, stats, export and check call the same `DatasetStore` the Dataset & labeling page calls,
so a dataset built in the browser can be exported, checked or extended here and the other way
round. Bad input is a FerError, which `fer_core.cli.main` prints as one `error:` line (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CLI_ACTOR = "cli"  # who the history and `undo` say acted, for changes made from here


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dataset", help="the custom dataset: import faces, stats, export, check")
    commands = parser.add_subparsers(dest="dataset_command", required=True, metavar="{import,stats,export,check}")
    root_help = "the dataset folder (default: $FER_DATASET_DIR, else data/custom in the repository)"

    importing = commands.add_parser(
        "import", help="add faces from a <class>/<images> folder or ZIP, an export ZIP, a FER2013 CSV or a picture"
    )
    importing.add_argument("src", help="folder, .zip, .csv or picture to import")
    importing.add_argument("--root", help=root_help)
    importing.add_argument("--model", help="model folder or registry name that pre-labels the faces (default: the default model)")
    importing.add_argument("--detector", default="blazeface", help="face detector for photos: blazeface or haar")
    importing.add_argument("--no-model", action="store_true", help="no predictions and no detector (photos are skipped)")

    stats = commands.add_parser("stats", help="faces by label, split and source")
    stats.add_argument("--root", help=root_help)
    stats.add_argument("--json", dest="json_path", metavar="FILE", help="also write the counts to this JSON file")

    export = commands.add_parser("export", help="write the dataset as a ZIP (images + manifest.csv) or a FER2013 CSV")
    export.add_argument("--root", help=root_help)
    export.add_argument("--out", required=True, metavar="FILE.zip|FILE.csv", help="the output file; its suffix picks the format")

    check = commands.add_parser("check", help="find files without rows, rows without files and unreadable images")
    check.add_argument("--root", help=root_help)
    check.add_argument("--repair", action="store_true", help="remove orphan files and the faces whose image is gone")


def run(args: argparse.Namespace) -> int:
    commands = {"import": _import, "stats": _stats, "export": _export, "check": _check}
    return commands[args.dataset_command](args)


def _import(args: argparse.Namespace) -> int:
    from fer_core.dataset_store import DatasetStore
    from fer_core.errors import DatasetError

    src = Path(args.src)
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    recognizer = None
    if not args.no_model:
        from fer_core.cli import _resolve_model_dir
        from fer_core.detection import create_detector
        from fer_core.inference import EmotionClassifier, EmotionRecognizer

        recognizer = EmotionRecognizer(create_detector(args.detector), EmotionClassifier(_resolve_model_dir(args.model)))
    store = DatasetStore(args.root)
    report = store.import_path(src, recognizer, actor=CLI_ACTOR)
    for line in report.lines(limit=50):
        print(line)
    stats = store.stats()
    print(f"dataset {store.root}: {stats.total} faces ({stats.labelled} labelled, {stats.unlabelled} unlabelled)")
    if report.skipped and not report.added and not report.duplicates:
        print(f"error: {src}: nothing could be imported ({len(report.skipped)} skipped, reasons above)", file=sys.stderr)
        return 2
    return 0


def _stats(args: argparse.Namespace) -> int:
    from fer_core.dataset_io import write_report_json
    from fer_core.dataset_records import MIN_TRAIN_PER_CLASS
    from fer_core.dataset_store import DatasetStore

    store = DatasetStore(args.root, create=False)
    stats = store.stats()
    too_small = stats.too_small()
    print(
        f"custom dataset {store.root}: {stats.total} faces ({stats.labelled} labelled, {stats.unlabelled} unlabelled), "
        f"{stats.deleted} deleted"
    )
    print(stats.table())
    print("by source: " + ", ".join(f"{source} {count}" for source, count in stats.by_source.items()))
    if too_small:
        print(f"too few training faces (< {MIN_TRAIN_PER_CLASS}) to train: {', '.join(too_small)}")
    if args.json_path:
        data = {"root": str(store.root), **stats.to_dict(), "too_small": too_small}
        written = write_report_json(args.json_path, json.dumps(data, indent=2) + "\n")
        print(f"wrote {written}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from fer_core.dataset_store import DatasetStore
    from fer_core.errors import DatasetError

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".zip", ".csv"):
        raise DatasetError(
            f"{out}: unknown output type {suffix or '(no suffix)'}; expected FILE.zip (images + manifest) or FILE.csv (FER2013)"
        )
    store = DatasetStore(args.root, create=False)
    if suffix == ".zip":
        path = store.export_zip(out)
        print(f"wrote {path}: {store.count()} faces and manifest.csv")
    else:
        path = store.export_csv(out)
        print(f"wrote {path}: {store.stats().labelled} labelled faces as a FER2013 CSV")
    return 0


def _check(args: argparse.Namespace) -> int:
    from fer_core.dataset_store import DatasetStore

    store = DatasetStore(args.root, create=False)
    report = store.check(repair=args.repair)
    for line in report.lines():
        print(line)
    if report.ok or (args.repair and not report.integrity):
        return 0
    if not args.repair:
        print("run again with --repair to fix what can be fixed")
    return 1
