"""``pippin diff`` / ``apply`` / ``merge`` on updated k-NN models."""

from __future__ import annotations

import json

import numpy as np

from pippin.pipelines import KNearestNeighborsClassifier, load
from pippin.pipelines.cli.main import main


def test_diff_apply_merge_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(1)
    base = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1).add_samples(
        rng.normal(size=(6, 2)), list("ababab")).save(tmp_path / "base.mlmodel")
    for user, (point, label) in enumerate([((9, 9), "nine"), ((-9, -9), "minus")]):
        np.savez(tmp_path / f"u{user}.npz", features=np.array([point, point], dtype=np.float32),
                 label=np.array([label, label]))
        assert main(["update", str(base), str(tmp_path / f"u{user}.npz"), "-o", str(tmp_path / f"u{user}.mlmodel")]) == 0
        assert main(["diff", str(base), str(tmp_path / f"u{user}.mlmodel"), "-o", str(tmp_path / f"u{user}.mldelta")]) == 0
    capsys.readouterr()
    assert main(["apply", str(base), str(tmp_path / "u0.mldelta"), "-o", str(tmp_path / "r0.mlmodel")]) == 0
    assert (tmp_path / "r0.mlmodel").read_bytes() == (tmp_path / "u0.mlmodel").read_bytes()
    capsys.readouterr()
    assert main(["merge", str(base), str(tmp_path / "u0.mldelta"), str(tmp_path / "u1.mldelta"),
                 "-o", str(tmp_path / "m.mlmodel"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_examples"] == [2, 2]
    merged = load(tmp_path / "m.mlmodel")
    got = merged.predict_batch({"features": np.array([[9, 9], [-9, -9]], dtype=np.float32)})
    assert list(got["label"]) == ["nine", "minus"]
    assert merged.spec.description.metadata.userDefined["pippin.examples_seen"] == "4"


def test_apply_to_another_base_fails_with_exit_2(tmp_path, capsys):
    a = KNearestNeighborsClassifier(n_dimensions=2, default_label="?").save(tmp_path / "a.mlmodel")
    b = KNearestNeighborsClassifier(n_dimensions=2, default_label="!").save(tmp_path / "b.mlmodel")
    np.savez(tmp_path / "d.npz", features=np.zeros((1, 2)), label=np.array(["z"]))
    main(["update", str(a), str(tmp_path / "d.npz"), "-o", str(tmp_path / "u.mlmodel")])
    main(["diff", str(a), str(tmp_path / "u.mlmodel"), "-o", str(tmp_path / "u.mldelta")])
    capsys.readouterr()
    assert main(["apply", str(b), str(tmp_path / "u.mldelta"), "-o", str(tmp_path / "x.mlmodel")]) == 2
    assert "delta was made for base" in capsys.readouterr().err
