"""The Training report page under AppTest: the shipped model's card, curves, confusion matrix and
per-class table with its own numbers; the comparison of two models; the message for evaluation
data that is not on this machine; evaluating and the training form's checks from the page.

Models are real folders: the shipped one in models/, or tiny zoo networks built, evaluated on
generated faces and registered in a temporary models folder.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fer_core.card import read_card
from fer_core.data import load_dataset
from fer_core.ensemble import is_ensemble
from fer_core.registry import ModelRegistry
from fer_core.reports import evaluate_and_store, load_evaluation
from tests.conftest import build_model_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/3_training_report.py"


def open_report(tab: str | None = None) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    if tab:
        app.query_params["report_tab"] = tab
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def figures(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def values(data) -> np.ndarray:
    """A trace's array, decoded when plotly sent it as a typed array ({dtype, bdata, shape})."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = data.get("shape")
        return array.reshape([int(size) for size in str(shape).split(",")]) if shape else array
    return np.asarray(data, dtype=float)


def traces_of(app: AppTest, kind: str) -> list[dict]:
    return [trace for figure in figures(app) for trace in figure["data"] if trace.get("type") == kind]


def test_shipped_model_report_shows_its_card_curves_heatmap_and_table(app_registry: Path, app_model_is_trained: bool):
    if not app_model_is_trained:
        pytest.skip("models/ holds no trained model")
    app = open_report()
    network = next(model for model in ModelRegistry(app_registry).list() if not is_ensemble(model.card))
    if app.selectbox(key="report_model").value != network.name:  # the shipped default is an ensemble
        app.selectbox(key="report_model").set_value(network.name).run()
    model_dir = app_registry / app.selectbox(key="report_model").value
    card = read_card(model_dir)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Val, one pass"] == f"{card.metrics['val_accuracy']:.1%}"
    assert metrics[f"Val, {card.metrics['best_tta']}"] == f"{card.metrics['val_accuracy_by_tta'][card.metrics['best_tta']]:.1%}"
    assert metrics["FLOPs a face"] == f"{card.flops / 1e6:.0f} M"

    # learning curves: train and validation per epoch across the lineage, the kept epochs marked
    curves = figures(app)[0]
    names = {trace["name"] for trace in curves["data"]}
    assert {"train loss", "validation loss", "train accuracy", "validation accuracy", "learning rate"} <= names
    lineage = json.loads((model_dir / "lineage.json").read_text()) if (model_dir / "lineage.json").is_file() else []
    epochs = [x for trace in curves["data"] if trace["name"] == "validation accuracy" for x in trace["x"] if x is not None]
    assert max(epochs) == sum(entry["kept_epoch"] for entry in lineage) + card.epochs_trained
    assert any("kept: epoch" in annotation.get("text", "") for annotation in curves["layout"]["annotations"])

    # the confusion matrix is the stored single-pass evaluation's, row-normalised by default
    stored = load_evaluation(model_dir, "val-none")
    heatmap = traces_of(app, "heatmap")[0]
    matrix = np.asarray(stored.report.confusion_matrix, float)
    np.testing.assert_allclose(values(heatmap["z"]), matrix / matrix.sum(axis=1, keepdims=True), atol=1e-9)
    per_class = next(frame.value for frame in app.dataframe if "class" in frame.value.columns)
    assert list(per_class["class"]) == [*card.classes, "macro avg", "weighted avg"]
    assert per_class.iloc[-2]["f1"] == pytest.approx(card.metrics["val_macro_f1"], abs=5e-5)
    assert per_class.iloc[-1]["support"] == card.val_images
    assert traces_of(app, "bar"), "the most-confused pairs and the reliability diagram"
    assert any(metric.label == "Expected calibration error" for metric in app.metric)

    app.toggle(key="report_normalized").set_value(False).run()
    np.testing.assert_allclose(values(traces_of(app, "heatmap")[0]["z"]), matrix)


def test_shipped_ensemble_report_shows_its_members_and_their_curves(app_registry: Path, app_model_is_trained: bool):
    ensembles = [model for model in ModelRegistry(app_registry).list() if is_ensemble(model.card)]
    if not app_model_is_trained or not ensembles:
        pytest.skip("models/ holds no trained ensemble")
    app = open_report()
    app.selectbox(key="report_model").set_value(ensembles[0].name).run()
    assert not app.exception, app.exception
    card = ensembles[0].card
    members = next(frame.value for frame in app.dataframe if "seed" in frame.value.columns)
    assert list(members["name"]) == [member["name"] for member in card.members]
    assert list(members["val_accuracy"]) == [member["val_accuracy"] for member in card.members]
    facts = next(frame.value for frame in app.dataframe if "value" in frame.value.columns)
    assert "epochs" not in set(facts[""]) and f"{len(card.members)} networks" in facts.set_index("")["value"]["members"]
    curves = figures(app)[0]  # one validation-accuracy line per member, from members/<name>.csv
    assert [trace["name"] for trace in curves["data"]] == [member["name"] for member in card.members]
    for trace, member in zip(curves["data"], card.members, strict=True):
        assert max(values(trace["y"])) >= member["val_accuracy"] - 0.02  # Keras bfloat16 vs served int8
    app.segmented_control(key="members_metric").set_value("val_loss").run()
    assert figures(app)[0]["layout"]["yaxis"]["title"]["text"] == "val loss"
    stored = load_evaluation(ensembles[0].path, "val-none")  # the confusion matrix is the ensemble's own
    matrix = np.asarray(stored.report.confusion_matrix, float)
    np.testing.assert_allclose(values(traces_of(app, "heatmap")[0]["z"]), matrix / matrix.sum(axis=1, keepdims=True), atol=1e-9)


@pytest.fixture
def two_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_image_folder) -> Path:
    """A models folder with two tiny networks, each with a history and an evaluation on the same
    generated faces (`val-none`), and a third evaluated on data that is then deleted."""
    import fer_core.registry

    root = tmp_path / "models"
    faces = make_image_folder(tmp_path / "data" / "val", per_class=3, size=32, seed=9)
    dataset = load_dataset(faces, image_size=32)
    for index, name in enumerate(("alpha", "beta")):
        folder = build_model_folder(root / name, seed=index)
        (folder / "history.csv").write_text(
            "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n"
            + "".join(f"{epoch},{2 - epoch / 10},{0.2 + epoch / 20},{2.1 - epoch / 10},{0.15 + epoch / 25 + index / 10},0.01,3\n"
                      for epoch in range(1, 6))
        )
        evaluate_and_store(folder, dataset, "none")
    (root / "registry.json").write_text(json.dumps({"default": "alpha"}))
    monkeypatch.setattr(fer_core.registry, "DEFAULT_MODELS_DIR", root)
    return root


def test_comparison_of_two_models(two_models: Path):
    app = open_report("Compare models")
    table = app.dataframe[0].value
    assert list(table["model"]) == ["alpha", "beta"]
    assert list(table["architecture"]) == ["tiny_cnn32", "tiny_cnn32"]
    f1_bars = [trace for trace in traces_of(app, "bar") if trace["name"] in ("alpha", "beta")]
    assert [trace["name"] for trace in f1_bars] == ["alpha", "beta"] and len(f1_bars[0]["y"]) == 7
    difference = traces_of(app, "heatmap")[0]
    first, second = (load_evaluation(two_models / name, "val-none").report.confusion_matrix for name in ("alpha", "beta"))
    rows = [np.asarray(matrix, float) / np.asarray(matrix, float).sum(axis=1, keepdims=True) for matrix in (first, second)]
    np.testing.assert_allclose(values(difference["customdata"]), rows[1] - rows[0], atol=1e-9)
    curves = [figure for figure in figures(app) if any(trace.get("mode") == "lines" for trace in figure["data"])]
    assert {trace["name"] for trace in curves[0]["data"]} == {"alpha", "beta"}


def test_a_model_serving_averaged_weights_says_which_epochs(two_models: Path):
    from fer_core.card import write_card

    card = read_card(two_models / "alpha")
    card.epochs_trained, card.best_epoch, card.checkpoint, card.averaged_epochs = 5, 5, "average", 3
    write_card(two_models / "alpha", card)
    app = open_report()
    facts = next(frame.value for frame in app.dataframe if list(frame.value.columns) == ["", "value"])
    assert facts.loc[facts[""] == "epochs", "value"].item() == "5 trained; the weights of epochs 3-5 averaged"
    labels = [annotation.get("text", "") for annotation in figures(app)[0]["layout"]["annotations"]]
    assert "kept: epochs 3-5 averaged" in labels


def test_missing_evaluation_data_is_named_and_the_rest_still_shows(two_models: Path, tmp_path: Path):
    shutil.rmtree(tmp_path / "data")
    app = open_report()
    warnings = " ".join(warning.value for warning in app.warning)
    assert "is not on this machine" in warnings and str(tmp_path / "data" / "val") in warnings
    assert "fer2013.csv" in warnings  # how to get the data
    assert traces_of(app, "heatmap"), "the confusion matrix needs no faces"
    assert any(metric.label == "Expected calibration error" for metric in app.metric)


def test_evaluate_from_the_page_stores_a_report(two_models: Path, tmp_path: Path, make_image_folder):
    app = open_report("Evaluate")
    app.text_input(key="evaluate_path").set_value(str(tmp_path / "nowhere"))
    app.button[0].click().run()
    assert any("no such" in error.value for error in app.error), [error.value for error in app.error]
    faces = make_image_folder(tmp_path / "holdout", per_class=2, size=32, seed=11)
    app.text_input(key="evaluate_path").set_value(str(faces))
    app.selectbox(key="evaluate_tta").set_value("flip")
    app.button[0].click().run()
    assert not app.exception, app.exception
    assert any("Stored as `holdout-flip`" in success.value for success in app.success)
    stored = load_evaluation(two_models / "alpha", "holdout-flip")
    assert stored.report.n_images == 14 and stored.report.tta == "flip"


def test_training_form_checks_before_starting(two_models: Path, tmp_path: Path, make_image_folder):
    app = open_report("Train")
    app.text_input(key="train_name").set_value("../escape")
    app.text_input(key="train_train").set_value(str(make_image_folder(tmp_path / "train", per_class=2, size=32)))
    app.toggle(key="train_hold_out").set_value(True)
    app.button(key="train_check").click().run()
    assert any("not a valid run name" in error.value for error in app.error)
    app.text_input(key="train_name").set_value("fine_name")
    app.button(key="train_check").click().run()
    assert not app.error, [error.value for error in app.error]
    assert any("Ready to train" in success.value and "14 faces" in success.value for success in app.success)
    assert not (Path(app.session_state["train_name"]).exists())
