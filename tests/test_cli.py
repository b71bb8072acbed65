"""`python -m fer_core`: predict, evaluate, models, and one clear `error:` line for every bad input.

Most cases call `fer_core.cli.main` in-process (TensorFlow is imported once per session); two run
the real `python -m fer_core` in a subprocess to check the exit status and stderr end to end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core import cli, registry
from fer_core.card import CARD_FILE, TFLITE_FILE
from fer_core.classes import CLASSES


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> str:
    """stderr is exactly one `error: ...` line that contains every fragment (file and problem)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, tiny_model_dir: Path, make_image_folder, make_fer_csv) -> dict[str, Path]:
    """One file or folder for each kind of bad input."""
    base = tmp_path_factory.mktemp("bad")
    notes = base / "notes.jpg"
    notes.write_text("not a picture")
    nocard = base / "nocard_model"
    nocard.mkdir()
    shutil.copy2(tiny_model_dir / TFLITE_FILE, nocard / TFLITE_FILE)
    mismatch = base / "mismatch_model"
    shutil.copytree(tiny_model_dir, mismatch)
    card = json.loads((mismatch / CARD_FILE).read_text())
    card["input_size"] = 48  # the network takes 32x32
    (mismatch / CARD_FILE).write_text(json.dumps(card))
    unknown_class = make_image_folder(base / "unknown_class", per_class=1, classes=("happy", "smirk"))
    unreadable = make_image_folder(base / "unreadable", per_class=1, classes=("sad",))
    (unreadable / "sad" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    pixels = " ".join(["100"] * 2304)
    return {
        "notes": notes,
        "nocard": nocard,
        "mismatch": mismatch,
        "unknown_class": unknown_class,
        "unreadable": unreadable,
        "empty_row_csv": make_fer_csv(base / "empty_row.csv", rows=[["3", pixels, "PublicTest"], [], ["3", pixels, "PublicTest"]]),
        "short_csv": make_fer_csv(base / "short.csv", rows=[["3", pixels, "PublicTest"], ["4", "1 2 3", "PublicTest"]]),
        "good_folder": make_image_folder(base / "good", per_class=1, size=32),
    }


# --- predict ---------------------------------------------------------------------------------------


def test_predict_json_lists_every_face_with_probabilities(tiny_model_dir, astronaut_path, capsys):
    code, out, err = run_cli(["predict", astronaut_path, "--model", tiny_model_dir, "--json"], capsys)
    assert code == 0 and err == ""
    results = json.loads(out)
    assert len(results) == 1 and results[0]["image"] == str(astronaut_path)
    assert (results[0]["width"], results[0]["height"]) == (512, 512)
    (face,) = results[0]["faces"]
    assert face["face"] == 1 and face["emotion"] in CLASSES
    assert sum(face[name] for name in CLASSES) == pytest.approx(1.0, abs=1e-3)
    assert face["confidence"] == pytest.approx(max(face[name] for name in CLASSES), abs=1e-4)


def test_predict_table_whole_image_haar_and_no_face(tiny_model_dir, astronaut_path, tmp_path, capsys):
    code, out, _ = run_cli(["predict", astronaut_path, "--model", tiny_model_dir, "--detector", "haar"], capsys)
    assert code == 0
    assert re.fullmatch(r".*astronaut\.png: face 1 at \d+,\d+ \d+x\d+: [a-z]+ \(\d+%\)\n", out)
    code, out, _ = run_cli(["predict", astronaut_path, "--model", tiny_model_dir, "--whole"], capsys)
    assert code == 0 and "face 1 at 0,0 512x512" in out
    plain = tmp_path / "plain.png"
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(plain)
    code, out, _ = run_cli(["predict", plain, "--model", tiny_model_dir], capsys)
    assert code == 0 and "plain.png: no face found (try --min-face 10" in out


def test_predict_reports_a_bad_image_and_goes_on(tiny_model_dir, astronaut_path, bad_inputs, capsys):
    code, out, err = run_cli(["predict", bad_inputs["notes"], astronaut_path, "--model", tiny_model_dir, "--json"], capsys)
    assert code == 0  # one image was fine
    assert_one_error_line(err, "notes.jpg", "not an image file")
    bad, good = json.loads(out)
    assert "not an image file" in bad["error"] and bad["faces"] == []
    assert len(good["faces"]) == 1


# --- every bad input: exit status 2 and one error line ----------------------------------------------


BAD_CASES = {
    "non-image": (["predict", "{notes}", "--model", "{tiny}"], ["notes.jpg", "not an image file"]),
    "missing-image": (["predict", "{base}/gone.png", "--model", "{tiny}"], ["gone.png", "no such file"]),
    "unknown-detector": (["predict", "{notes}", "--model", "{tiny}", "--detector", "yolo"], ["unknown face detector 'yolo'"]),
    "model-without-card": (["predict", "{notes}", "--model", "{nocard}"], ["nocard_model", "has no card.json"]),
    "mismatched-input-size": (
        ["predict", "{notes}", "--model", "{mismatch}"],
        ["mismatch_model/model.tflite", "takes input (32, 32, 1), but card.json says (48, 48, 1)"],
    ),
    "keras-mismatched-input-size": (
        ["evaluate", "--model", "{mismatch}", "--data", "{good_folder}", "--keras"],
        ["mismatch_model/model.keras", "takes input (32, 32, 1)"],
    ),
    "empty-csv-row": (["evaluate", "--model", "{tiny}", "--data", "{empty_row_csv}"], ["empty_row.csv, line 3", "empty row"]),
    "wrong-pixel-count": (
        ["evaluate", "--model", "{tiny}", "--data", "{short_csv}"],
        ["short.csv, line 3", "3 pixel values do not form a square image"],
    ),
    "unknown-class-folder": (
        ["evaluate", "--model", "{tiny}", "--data", "{unknown_class}"],
        ["unknown_class", "unknown class folder(s) smirk"],
    ),
    "unreadable-dataset-image": (
        ["evaluate", "--model", "{tiny}", "--data", "{unreadable}"],
        ["corrupt.png", "not an image file", "in dataset"],
    ),
    "usage-on-folder": (
        ["evaluate", "--model", "{tiny}", "--data", "{good_folder}", "--usage", "PublicTest"],
        ["--usage applies to a FER2013 CSV"],
    ),
    "unknown-architecture": (
        ["train", "--arch", "resnet99", "--data", "{good_folder}", "--out", "{base}/run_a"],
        ["unknown architecture 'resnet99'"],
    ),
    "missing-weights-file": (
        ["train", "--arch", "mobilenet_transfer", "--weights", "{base}/imagenet.h5", "--data", "{good_folder}",
         "--out", "{base}/run_b", "--epochs", "1"],
        ["imagenet.h5", "MobileNet weights file not found (nothing is downloaded"],
    ),
    "train-on-unknown-class": (
        ["train", "--arch", "tiny_cnn32", "--data", "{unknown_class}", "--out", "{base}/run_c", "--epochs", "1"],
        ["unknown class folder(s) smirk"],
    ),
    "register-without-card": (["models", "--register", "{base}"], ["has no card.json"]),
    "unknown-default": (["models", "--set-default", "nobody"], ["no model named 'nobody'"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_error_line(case, bad_inputs, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "DEFAULT_MODELS_DIR", tmp_path / "models")  # never touch the real models/
    values = {key: str(value) for key, value in bad_inputs.items()}
    values.update(tiny=str(tiny_model_dir), base=str(tmp_path))
    args, fragments = BAD_CASES[case]
    code, out, err = run_cli([arg.format(**values) for arg in args], capsys)
    assert code == 2
    assert_one_error_line(err, *fragments)


# --- evaluate and models -------------------------------------------------------------------------


def test_evaluate_prints_a_table_and_writes_json(tiny_model_dir, tmp_path, make_fer_csv, capsys):
    data = make_fer_csv(tmp_path / "fer.csv", per_class=1, usages=("Training", "PrivateTest"))
    report_path = tmp_path / "report.json"
    code, out, _ = run_cli(
        ["evaluate", "--model", tiny_model_dir, "--data", data, "--usage", "PrivateTest", "--tta", "flip", "--json", report_path],
        capsys,
    )
    assert code == 0
    assert "model tiny_test (tflite) on" in out and "[PrivateTest]" in out
    assert "images 7   TTA flip" in out
    report = json.loads(report_path.read_text())
    assert report["n_images"] == 7 and report["tta"] == "flip" and report["extra"]["usage"] == ["PrivateTest"]


def test_evaluate_store_keeps_the_report_beside_the_model(tiny_model_dir, tmp_path, make_fer_csv, capsys):
    from fer_core.reports import load_evaluation

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = make_fer_csv(tmp_path / "fer.csv", per_class=1, usages=("PrivateTest",))
    code, out, _ = run_cli(["evaluate", "--model", model, "--data", data, "--usage", "PrivateTest", "--store"], capsys)
    assert code == 0 and "stored as fer.csv-PrivateTest-none" in out
    stored = load_evaluation(model, "fer.csv-PrivateTest-none")
    assert stored.report.n_images == 7 and stored.ids == [f"line {line}" for line in range(2, 9)]


def test_models_lists_registers_and_sets_the_default(tiny_model_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setattr(registry, "DEFAULT_MODELS_DIR", root)
    code, out, _ = run_cli(["models"], capsys)
    assert code == 0 and f"no models in {root}" in out
    code, out, _ = run_cli(["models", "--register", tiny_model_dir], capsys)
    assert code == 0 and f"registered tiny_test in {root / 'tiny_test'}" in out
    assert re.search(r"^\*L tiny_test +tiny_cnn32 +11\.1 +25\.0%", out, re.MULTILINE), out
    code, out, _ = run_cli(["models", "--register", tiny_model_dir, "--name", "second"], capsys)
    code, out, _ = run_cli(["models", "--set-default", "second", "--set-live", "tiny_test", "--speed"], capsys)
    assert code == 0 and "default model: second" in out and "live webcam model: tiny_test" in out
    rows = [line for line in out.splitlines() if line.startswith(("*", " L", "  "))]
    assert rows[1].startswith("*  second") and rows[2].startswith(" L tiny_test")
    assert "faces/s b1" in out and re.search(r"tiny_cnn32 .* [\d,]+ +[\d,]+  \[", rows[2])
    (root / "half_done").mkdir()
    code, out, _ = run_cli(["models"], capsys)
    assert "! half_done: " in out and "has no card.json" in out


def test_models_zoo_lists_every_architecture(capsys):
    from fer_core import zoo

    code, out, _ = run_cli(["models", "--zoo"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == zoo.list_models()
    assert "resnet_fer           input 48x48" in out


# --- the real command line ------------------------------------------------------------------------


def python_m_fer_core(args: list, repo_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)], cwd=repo_root, env=env, capture_output=True, text=True, timeout=600
    )


def test_python_m_fer_core_bad_model_exits_2_with_one_line(repo_root, bad_inputs):
    result = python_m_fer_core(["evaluate", "--model", bad_inputs["nocard"], "--data", bad_inputs["good_folder"]], repo_root)
    assert result.returncode == 2
    assert result.stderr == f"error: {bad_inputs['nocard']}: not a model folder (it has no card.json)\n"
    assert result.stdout == ""


def test_python_m_fer_core_predict_json(repo_root, tiny_model_dir, astronaut_path, bad_inputs):
    """End to end: one good and one bad image. TensorFlow's own C++ start-up logs may precede
    the error line on stderr; the product's output is the single `error:` line."""
    result = python_m_fer_core(["predict", astronaut_path, bad_inputs["notes"], "--model", tiny_model_dir, "--json"], repo_root)
    assert result.returncode == 0, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error_lines == ["error: notes.jpg: not an image file (or a format that cannot be read)"]
    assert "Traceback" not in result.stderr
    good, bad = json.loads(result.stdout)
    assert len(good["faces"]) == 1 and good["faces"][0]["emotion"] in CLASSES
    assert bad["faces"] == [] and "not an image file" in bad["error"]
