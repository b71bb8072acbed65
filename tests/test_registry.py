"""fer_core.registry and fer_core.card: listing model folders by their cards, the default model,
registering a run, and every way a card can be wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core.card import CARD_FILE, KERAS_FILE, TFLITE_FILE, read_card, sha256_of
from fer_core.errors import ModelError
from fer_core.registry import REGISTRY_FILE, ModelRegistry


def add_model(root: Path, source: Path, name: str, val_accuracy: float | None = 0.5, files=None) -> Path:
    """A copy of the tiny model folder under `root/name` with its own name and accuracy."""
    folder = root / name
    folder.mkdir(parents=True)
    for file in files or (CARD_FILE, TFLITE_FILE):
        shutil.copy2(source / file, folder / file)
    if (folder / CARD_FILE).exists():
        card = json.loads((folder / CARD_FILE).read_text())
        card["name"] = name
        card["metrics"] = {} if val_accuracy is None else {"val_accuracy": val_accuracy}
        (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


@pytest.fixture
def models_root(tmp_path: Path, tiny_model_dir: Path) -> Path:
    root = tmp_path / "models"
    add_model(root, tiny_model_dir, "alpha", 0.61)
    add_model(root, tiny_model_dir, "beta", 0.68)
    add_model(root, tiny_model_dir, "gamma", None)
    return root


def test_list_models_with_cards_best_first_when_no_default_is_named(models_root: Path):
    registry = ModelRegistry(models_root)
    models = registry.list()
    assert [model.name for model in models] == ["beta", "alpha", "gamma"]
    assert [model.is_default for model in models] == [True, False, False]
    assert registry.default().name == "beta"
    assert models[0].card.architecture == "tiny_cnn32" and models[0].path == models_root / "beta"
    assert models[0].val_accuracy == 0.68 and models[2].val_accuracy is None
    assert models[0].label() == "beta (tiny_cnn32, 68.0% val) - default"
    assert models[2].label() == "gamma (tiny_cnn32, not evaluated)"


def test_registry_json_names_the_default_and_set_default_changes_it(models_root: Path):
    (models_root / REGISTRY_FILE).write_text(json.dumps({"default": "gamma"}))
    registry = ModelRegistry(models_root)
    assert registry.default().name == "gamma"
    registry.set_default("alpha")
    assert json.loads((models_root / REGISTRY_FILE).read_text()) == {"default": "alpha"}
    assert [model.name for model in registry.list()] == ["alpha", "beta", "gamma"]
    with pytest.raises(ModelError, match=r"no model named 'delta' in .*models"):
        registry.set_default("delta")
    (models_root / REGISTRY_FILE).write_text("{not json")
    assert registry.default().name == "beta"  # a broken registry.json falls back to the best model


def test_invalid_folders_are_reported_not_listed(models_root: Path, tiny_model_dir: Path):
    add_model(models_root, tiny_model_dir, "no_card", files=(TFLITE_FILE, KERAS_FILE))
    add_model(models_root, tiny_model_dir, "unfinished", files=(CARD_FILE,))
    (models_root / "broken").mkdir()
    (models_root / "broken" / CARD_FILE).write_text("{")
    (models_root / ".alpha.incoming").mkdir()  # a registration in progress is invisible
    (models_root / "notes.txt").write_text("not a folder")
    models, problems = ModelRegistry(models_root).scan()
    assert [model.name for model in models] == ["beta", "alpha", "gamma"]
    assert set(problems) == {"no_card", "unfinished", "broken"}
    assert "has no card.json" in problems["no_card"]
    assert "no model.tflite or model.keras (unfinished training run?)" in problems["unfinished"]
    assert "the card is not valid JSON" in problems["broken"]


def test_empty_or_missing_models_folder(tmp_path: Path):
    with pytest.raises(ModelError, match=r"nothing: no usable model folder"):
        ModelRegistry(tmp_path / "nothing").default()
    assert ModelRegistry(tmp_path).list() == []
    with pytest.raises(ModelError, match=r"no model named 'x'"):
        ModelRegistry(tmp_path).get("x")


def test_register_a_run_copies_the_model_files_only(tmp_path: Path, tiny_model_dir: Path, models_root: Path):
    run = tmp_path / "runs" / "alpha"  # a finalized run whose card is named like an existing model
    shutil.copytree(tiny_model_dir, run)
    card = json.loads((run / CARD_FILE).read_text())
    card["name"] = "alpha"
    (run / CARD_FILE).write_text(json.dumps(card))
    (run / "history.csv").write_text("epoch,loss\n1,2.0\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.keras").write_bytes(b"big checkpoint")

    registry = ModelRegistry(models_root)
    registered = registry.register(run)
    assert registered.name == "alpha_v2" and registered.path == models_root / "alpha_v2"
    assert sorted(os.listdir(registered.path)) == sorted([CARD_FILE, KERAS_FILE, TFLITE_FILE, "history.csv"])
    assert read_card(registered.path).name == "alpha_v2"
    assert sha256_of(registered.path / TFLITE_FILE) == read_card(run).sha256[TFLITE_FILE]
    assert "alpha_v2" in [model.name for model in registry.list()]
    assert registry.register(run).name == "alpha_v3"

    named = registry.register(run, name="my-model.1")
    assert named.name == "my-model.1"
    with pytest.raises(ModelError, match=r"models/my-model\.1: a model of that name exists already"):
        registry.register(run, name="my-model.1")
    with pytest.raises(ModelError, match=r"'bad name/..': a model name uses letters, digits"):
        registry.register(run, name="bad name/..")
    with pytest.raises(ModelError, match=r"not a model folder \(it has no card\.json\)"):
        registry.register(tmp_path / "runs")
    assert not any(entry.name.endswith(".incoming") for entry in models_root.iterdir())


def test_fer_models_dir_environment_variable_moves_the_registry(tmp_path: Path, repo_root: Path):
    code = "from fer_core.registry import ModelRegistry; print(ModelRegistry().root)"
    env = {**os.environ, "FER_MODELS_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(tmp_path)


# --- card validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", r"card\.json: the card is not valid JSON"),
        ("[1, 2]", r"card\.json: the card must be a JSON object"),
        ('{"name": "x"}', r"card\.json: the card lacks architecture, input_size"),
        ('{"name": "x", "architecture": "a", "input_size": 4}', r"input_size must be an integer between 8 and 512, got 4"),
        ('{"name": "x", "architecture": "a", "input_size": "48"}', r"input_size must be an integer between 8 and 512, got '48'"),
        (
            '{"name": "x", "architecture": "a", "input_size": 48, "classes": ["happy", "sad"]}',
            r"the card's classes \['happy', 'sad'\] differ from this app's",
        ),
    ],
    ids=["invalid-json", "not-object", "missing-fields", "tiny-input", "string-input", "other-classes"],
)
def test_bad_cards_name_the_file_and_the_problem(tmp_path: Path, content: str, message: str):
    (tmp_path / CARD_FILE).write_text(content)
    with pytest.raises(ModelError, match=message):
        read_card(tmp_path)


def test_card_ignores_unknown_keys_and_keeps_known_ones(tmp_path: Path):
    (tmp_path / CARD_FILE).write_text(json.dumps({"name": "x", "architecture": "a", "input_size": 64, "future": 1}))
    card = read_card(tmp_path)
    assert (card.name, card.input_size, card.color_mode) == ("x", 64, "grayscale")


def test_live_model_is_separate_from_the_default(tmp_path: Path):
    from fer_core.registry import ModelRegistry
    from tests.conftest import build_model_folder

    for name in ("big", "small"):
        build_model_folder(tmp_path / name)
    registry = ModelRegistry(tmp_path)
    registry.set_default("big")
    assert registry.live_default().name == "big", "without a live model the default serves video too"
    registry.set_live_default("small")
    assert (registry.default().name, registry.live_default().name) == ("big", "small")
    registry.set_default("small")
    registry.set_default("big")
    assert registry.live_default().name == "small", "setting the default keeps the live choice"
    with pytest.raises(ModelError):
        registry.set_live_default("missing")
