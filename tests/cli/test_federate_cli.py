"""``pippin federate``: federated rounds on Flower from a table with a client column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pippin.pipelines import load
from pippin.pipelines.cli.main import main
from pippin.pipelines.personalize.federated import updatable_parameters, with_parameters
from pippin.spec import io as spec_io


def _start(tmp_path):
    from pippin.pipelines.build import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=["a", "b", "c"],
                       predicted_feature_name="label", seed=0)
    b.add_dense("head", "x", "logits", n_out=3)
    b.add_softmax("softmax", "logits", "probs")
    b.make_updatable(["head"])
    b.set_loss("categorical_cross_entropy", input="probs", target="label")
    b.set_optimizer("sgd", learning_rate=0.1, batch_size=8, momentum=0.0)
    b.set_epochs(3)
    path = tmp_path / "start.mlmodel"
    spec_io.save(b.spec, path)
    return path, b.spec


def _table(tmp_path, n=240):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = np.eye(4, dtype=np.float32)[y] * 2 + 0.4 * rng.standard_normal((n, 4))
    table = pd.DataFrame({f"x_{i}": x[:, i] for i in range(4)})
    table["label"] = np.array(["a", "b", "c"])[y]
    table["device"] = np.array(["d1", "d2", "d3", "d4"])[np.arange(n) % 4]
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    return path


def test_federate_writes_a_model_differing_only_in_updatable_weights(tmp_path, capsys):
    pytest.importorskip("flwr")
    start, spec = _start(tmp_path)
    out = tmp_path / "fed.mlmodel"
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "3",
                 "-o", str(out), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["ok"] and payload["n_clients"] == 4 and len(payload["rounds"]) == 3
    assert payload["accuracy"] > 0.8 and payload["rounds"][-1]["clients"] == 4
    written = load(str(out)).spec
    assert (with_parameters(written, updatable_parameters(spec)).SerializeToString()
            == with_parameters(spec, updatable_parameters(spec)).SerializeToString())
    assert main(["validate", str(out)]) == 0
    ct = pytest.importorskip("coremltools")
    parsed = ct.models.utils.load_spec(str(out))
    assert parsed.isUpdatable and [f.name for f in parsed.description.trainingInput] == ["x", "label"]


def test_federate_progress_lines_and_missing_column(tmp_path, capsys):
    pytest.importorskip("flwr")
    start, _ = _start(tmp_path)
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "2",
                 "--fraction", "0.5", "--strategy", "fedadam", "-o", str(tmp_path / "o.mlmodel")])
    err = capsys.readouterr().err
    assert code == 0 and "round 1: loss" in err and "round 2: loss" in err and "clients 2/4" in err
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "user", "--rounds", "1",
                 "-o", str(tmp_path / "p.mlmodel")])
    assert code == 2 and "no column 'user'" in capsys.readouterr().err


def test_federate_without_flower_is_one_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "flwr", None)
    start, _ = _start(tmp_path)
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "1",
                 "-o", str(tmp_path / "o.mlmodel"), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 2 and not payload["ok"] and "Flower" in payload["error"]["message"]
    assert "pippin[federated]" in payload["error"]["hint"]


def test_federate_with_no_held_out_data_still_runs(tmp_path, capsys):
    pytest.importorskip("flwr")
    start, _ = _start(tmp_path)
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "2",
                 "--test-fraction", "0", "-o", str(tmp_path / "o.mlmodel"), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["accuracy"] is None and len(payload["rounds"]) == 2


def test_secure_aggregation_needs_the_simulation_engine(tmp_path, capsys):
    pytest.importorskip("flwr")
    start, _ = _start(tmp_path)
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "1",
                 "--engine", "inprocess", "--secure-aggregation", "-o", str(tmp_path / "x.mlmodel"), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code != 0 and not payload["ok"] and "simulation engine" in json.dumps(payload)
    assert not (tmp_path / "x.mlmodel").exists()


def test_fedprox_mu_reaches_the_clients(tmp_path, capsys):
    pytest.importorskip("flwr")
    start, spec = _start(tmp_path)
    outs = {}
    for mu in ("0", "5"):
        out = tmp_path / f"prox{mu}.mlmodel"
        assert main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "1",
                     "--strategy", "fedprox", "--proximal-mu", mu, "-o", str(out), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["proximal_mu"] == float(mu)
        outs[mu] = updatable_parameters(load(str(out)).spec)[0]
    w0 = updatable_parameters(spec)[0]
    assert np.linalg.norm(outs["5"] - w0) < np.linalg.norm(outs["0"] - w0)  # the pull is applied


def test_secure_aggregation_on_the_simulation_engine(tmp_path, capsys):
    pytest.importorskip("flwr")
    pytest.importorskip("ray", reason="Flower's simulation engine needs pippin[federated-simulation] (Ray)")
    start, spec = _start(tmp_path)
    out = tmp_path / "secure.mlmodel"
    code = main(["federate", str(start), str(_table(tmp_path)), "--client-col", "device", "--rounds", "2",
                 "--secure-aggregation", "-o", str(out), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["engine"] == "simulation" and payload["secure_aggregation"]
    assert [r["clients"] for r in payload["rounds"]] == [4, 4] and payload["accuracy"] > 0.8
    assert (with_parameters(load(str(out)).spec, updatable_parameters(spec)).SerializeToString()
            == with_parameters(spec, updatable_parameters(spec)).SerializeToString())
