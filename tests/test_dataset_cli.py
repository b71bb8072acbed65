"""`python -m fer_core dataset import|stats|export|check`: the store the page uses, from the
command line, and one clear `error:` line (exit 2) for every bad input.

Most cases call `fer_core.cli.main` in-process; one runs the real `python -m fer_core` in a
subprocess to check the exit status and stderr end to end.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core import cli, registry
from fer_core.classes import CLASSES
from fer_core.dataset_records import IMAGES_DIR
from fer_core.dataset_store import DatasetStore

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "models" / "resnet_fer"


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, make_image_folder) -> Path:
    """A dataset root with 7 labelled faces (one per class), imported without a model."""
    base = tmp_path_factory.mktemp("small")
    tree = make_image_folder(base / "tree", per_class=1, seed=3)
    root = base / "dataset"
    assert DatasetStore(root).import_path(tree).added
    return root


def test_import_stats_export_and_check(tmp_path, make_image_folder, astronaut_path, capsys):
    tree = make_image_folder(tmp_path / "tree", per_class=2)
    (tree / "happy" / "photo.png").write_bytes(astronaut_path.read_bytes())
    (tree / "sad" / "broken.png").write_bytes(b"not an image")
    root = tmp_path / "dataset"
    code, out, err = run_cli(["dataset", "import", tree, "--root", root, "--model", SHIPPED_MODEL], capsys)
    assert code == 0 and err == ""
    assert f"{tree}: 15 added, 0 duplicates, 1 skipped" in out and "skipped: sad/broken.png: not an image file" in out
    assert f"dataset {root}: 15 faces (15 labelled, 0 unlabelled)" in out
    store = DatasetStore(root)
    photo = store.list_faces(label="happy", order="id")[-1]
    assert photo.origin == "happy/photo.png" and photo.box is not None
    assert {face.model_name for face in store.list_faces()} == {"resnet_fer"}  # every face pre-labelled

    code, out, _ = run_cli(["dataset", "import", tree, "--root", root, "--no-model"], capsys)
    assert code == 0 and "0 added, 14 duplicates, 2 skipped" in out  # the photo needs a model this time

    report = tmp_path / "stats.json"
    code, out, _ = run_cli(["dataset", "stats", "--root", root, "--json", report], capsys)
    assert code == 0 and f"custom dataset {root}: 15 faces (15 labelled, 0 unlabelled), 0 deleted" in out
    assert "by source: upload 0, camera 0, webcam 0, import 15" in out and "too few training faces" in out
    counts = json.loads(report.read_text())
    assert counts["by_label"] == {name: 3 if name == "happy" else 2 for name in CLASSES}
    assert counts["total"] == 15 and sum(counts["by_split"].values()) == 15 and set(counts["too_small"]) == set(CLASSES)

    code, out, _ = run_cli(["dataset", "export", "--root", root, "--out", tmp_path / "faces.zip"], capsys)
    assert code == 0 and "faces.zip: 15 faces and manifest.csv" in out
    code, out, _ = run_cli(["dataset", "export", "--root", root, "--out", tmp_path / "faces.csv"], capsys)
    assert code == 0 and "faces.csv: 15 labelled faces as a FER2013 CSV" in out
    assert len(list(csv.DictReader((tmp_path / "faces.csv").open()))) == 15
    for export in ("faces.zip", "faces.csv"):
        copy = tmp_path / f"copy_{export}"
        code, out, _ = run_cli(["dataset", "import", tmp_path / export, "--root", copy, "--no-model"], capsys)
        assert code == 0 and "15 added, 0 duplicates, 0 skipped" in out
        assert DatasetStore(copy).stats().by_label == store.stats().by_label

    code, out, _ = run_cli(["dataset", "check", "--root", root], capsys)
    assert code == 0 and "15 faces, 15 image files" in out and "no problem found" in out
    (store.root / photo.file).unlink()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(store.root / IMAGES_DIR / "stray.png")
    code, out, _ = run_cli(["dataset", "check", "--root", root], capsys)
    assert code == 1 and f"face {photo.id}: image file missing" in out and "orphan file (no row): images/stray.png" in out
    assert "run again with --repair" in out
    code, out, _ = run_cli(["dataset", "check", "--root", root, "--repair"], capsys)
    assert code == 0 and f"repaired: removed face {photo.id} (image file missing)" in out
    assert "repaired: removed orphan file images/stray.png" in out
    code, out, _ = run_cli(["dataset", "check", "--root", root], capsys)
    assert code == 0 and "14 faces, 14 image files" in out


def test_the_default_root_comes_from_the_environment(tmp_path, make_image_folder, monkeypatch, capsys):
    tree = make_image_folder(tmp_path / "tree", per_class=1, classes=("fear",))
    monkeypatch.setenv("FER_DATASET_DIR", str(tmp_path / "from_env"))
    code, out, _ = run_cli(["dataset", "import", tree, "--no-model"], capsys)
    assert code == 0 and f"dataset {tmp_path / 'from_env'}: 1 faces" in out
    code, out, _ = run_cli(["dataset", "stats"], capsys)
    assert code == 0 and "fear" in out and "1 faces (1 labelled" in out


BAD_CASES = {
    "missing-source": (["dataset", "import", "{base}/gone", "--root", "{base}/new", "--no-model"], ["gone", "no such file or folder"]),
    "unknown-source-type": (["dataset", "import", "{base}/data.bin", "--root", "{base}/new", "--no-model"], ["data.bin", "expected a folder"]),
    "zip-slip": (["dataset", "import", "{base}/slip.zip", "--root", "{base}/new", "--no-model"], ["slip.zip", "'../evil.png' has an unsafe path"]),
    "nothing-imported": (["dataset", "import", "{base}/broken", "--root", "{base}/new", "--no-model"], ["broken", "nothing could be imported"]),
    "unknown-model": (["dataset", "import", "{base}/broken", "--root", "{base}/new", "--model", "nobody"], ["no model named 'nobody'"]),
    "unknown-detector": (["dataset", "import", "{base}/broken", "--root", "{base}/new", "--model", "{model}", "--detector", "yolo"], ["unknown face detector 'yolo'"]),
    "stats-not-a-dataset": (["dataset", "stats", "--root", "{base}"], ["not a custom dataset (no index.sqlite)"]),
    "export-not-a-dataset": (["dataset", "export", "--root", "{base}", "--out", "{base}/x.zip"], ["not a custom dataset"]),
    "check-not-a-dataset": (["dataset", "check", "--root", "{base}/nowhere"], ["nowhere", "not a custom dataset"]),
    "export-unknown-suffix": (["dataset", "export", "--root", "{store}", "--out", "{base}/faces.tar"], ["faces.tar", "unknown output type .tar"]),
    "export-no-suffix": (["dataset", "export", "--root", "{store}", "--out", "{base}/faces"], ["unknown output type (no suffix)"]),
    "export-missing-folder": (["dataset", "export", "--root", "{store}", "--out", "{base}/no/faces.zip"], ["no such folder"]),
    "stats-json-missing-folder": (["dataset", "stats", "--root", "{store}", "--json", "{base}/no/s.json"], ["no such folder"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_error_line(case, small_store, tmp_path, monkeypatch, capsys):
    import zipfile

    monkeypatch.setattr(registry, "DEFAULT_MODELS_DIR", tmp_path / "models")  # never touch the real models/
    (tmp_path / "data.bin").write_bytes(b"\0")
    (tmp_path / "broken" / "happy").mkdir(parents=True)
    (tmp_path / "broken" / "happy" / "a.png").write_bytes(b"not an image")
    with zipfile.ZipFile(tmp_path / "slip.zip", "w") as archive:
        archive.writestr("../evil.png", b"\0")
    values = {"base": str(tmp_path), "store": str(small_store), "model": str(SHIPPED_MODEL)}
    args, fragments = BAD_CASES[case]
    code, _, err = run_cli([arg.format(**values) for arg in args], capsys)
    assert code == 2
    assert_one_error_line(err, *fragments)
    assert not (tmp_path / "evil.png").exists()


def test_the_real_command_fails_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fer_core", "dataset", "stats", "--root", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert_one_error_line(result.stderr, str(tmp_path), "not a custom dataset")
