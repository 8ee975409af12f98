"""``pippin update``: an updatable k-NN exported by pippin parses in coremltools, validates, and learns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, load
from pippin.pipelines.cli.main import main


@pytest.fixture()
def knn_file(tmp_path):
    rng = np.random.default_rng(0)
    knn = KNearestNeighborsClassifier(n_dimensions=3, default_label="?", k=1, index="kd_tree")
    return knn.add_samples(rng.normal(size=(12, 3)), list("abc") * 4).save(tmp_path / "knn.mlmodel")


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    return code, json.loads(capsys.readouterr().out)


def test_exported_knn_parses_in_coremltools_and_validates(knn_file, capsys):
    ct = pytest.importorskip("coremltools")
    spec = ct.models.utils.load_spec(str(knn_file))
    assert spec.isUpdatable and [f.name for f in spec.description.trainingInput] == ["features", "label"]
    code, out = run_json(capsys, ["validate", str(knn_file)])
    assert code == 0 and out["ok"] is True


@pytest.mark.parametrize("form", ["npz", "csv", "parquet"])
def test_update_then_predicts_the_new_examples(knn_file, tmp_path, capsys, form):
    new = np.array([[20, 20, 20], [-20, 20, -20]], dtype=np.float32)
    labels = ["far", "other"]
    if form == "npz":
        data = tmp_path / "new.npz"
        np.savez(data, features=new, label=np.array(labels))
    else:
        table = pd.DataFrame({f"features_{i}": new[:, i] for i in range(3)} | {"label": labels})
        data = tmp_path / f"new.{form}"
        table.to_csv(data, index=False) if form == "csv" else table.to_parquet(data)
    out_path = tmp_path / "updated.mlmodel"
    code, out = run_json(capsys, ["update", str(knn_file), str(data), "-o", str(out_path)])
    assert code == 0 and out["n_examples"] == 2 and out["model"] == str(out_path)
    got = load(out_path).predict_batch({"features": new + 0.5})
    assert list(got["label"]) == labels
    code, out = run_json(capsys, ["validate", str(out_path)])
    assert code == 0


def test_update_names_a_missing_column(knn_file, tmp_path, capsys):
    data = tmp_path / "bad.csv"
    pd.DataFrame({"features_0": [1.0], "features_1": [1.0], "label": ["x"]}).to_csv(data, index=False)
    code, out = run_json(capsys, ["update", str(knn_file), str(data), "-o", str(tmp_path / "o.mlmodel")])
    assert code == 2 and "features_2" in out["error"]["message"]


def test_update_refuses_a_non_updatable_model(tmp_path, capsys):
    path = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", updatable=False).save(tmp_path / "f.mlmodel")
    data = tmp_path / "d.npz"
    np.savez(data, features=np.zeros((1, 2)), label=np.array(["a"]))
    code, out = run_json(capsys, ["update", str(path), str(data), "-o", str(tmp_path / "o.mlmodel")])
    assert code == 2 and "not updatable" in out["error"]["message"]


def test_update_trains_an_updatable_network_classifier_from_a_table(tmp_path, capsys):
    from pippin.pipelines.build.network import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=["lo", "hi"], seed=1)
    b.add_dense("fc", "x", "logits", n_out=2)
    b.add_softmax("sm", "logits", "probs")
    b.make_updatable(["fc"])
    b.set_loss("categorical_cross_entropy")
    b.set_optimizer("sgd", learning_rate=0.5, batch_size=8)
    b.set_epochs(2)
    from pippin.spec import io as spec_io

    model_path = spec_io.save(b.spec, tmp_path / "net.mlmodel")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    labels = np.where(x[:, 0] + x[:, 1] > 0, "hi", "lo")
    data = tmp_path / "train.csv"
    pd.DataFrame({f"x_{i}": x[:, i] for i in range(4)} | {"classLabel": labels}).to_csv(data, index=False)
    out = tmp_path / "trained.mlmodel"
    code, report = run_json(capsys, ["update", str(model_path), str(data), "-o", str(out), "--epochs", "6"])
    assert code == 0 and len(report["losses"]) == 6 and report["losses"][-1] < report["losses"][0]
    accuracy = np.mean(load(out).predict_batch({"x": x})["classLabel"] == labels)
    assert accuracy > 0.85
