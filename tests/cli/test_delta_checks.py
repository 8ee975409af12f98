"""Deltas from strangers and mixed updates (issue 13 items 2-3, issue 12 items 2-3).

- a k-NN personalization delta and a network-update delta of one sound model cannot be
  merged, in either order: refused naming both files (not an IndexError, not a silent drop);
- ``diff`` records the real example count of a personalization or an update and says
  when the count is a default;
- example counts are positive whole numbers (a count of 0 used to write NaN weights);
- ``apply`` verifies the recorded hashes (an edited, re-zipped manifest is refused, both
  digests named); delta reads have size limits; archive faults are one
  "not a pippin delta file: ..." line.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, PipelineError, load
from pippin.pipelines.cli.main import main
from pippin.pipelines.personalize.delta import Delta, merge


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    """A scratch sound model of three demo kinds, a k-NN personalization from 2 more kinds, and an update."""
    from pippin.datasets import make_demo_sounds

    root = tmp_path_factory.mktemp("delta_sound")
    data = make_demo_sounds(root / "all", clips_per_kind=6, seconds=1.5, seed=5)
    for path, label in zip(data.paths, data.labels):
        i = int(path.stem.rsplit("_", 1)[1])
        part = "train" if label in ("tone", "noise", "hum") else "mine"
        if part == "mine" and i >= 5:
            continue
        (root / part / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / part / label / path.name)
    base = root / "sounds.mlmodel"
    assert main(["train", "sound", str(root / "train"), "-o", str(base), "--feature-extractor", "scratch",
                 "--epochs", "2", "--validation-fraction", "0", "--json"]) == 0
    assert main(["personalize", str(base), str(root / "mine"), "-o", str(root / "me.mlmodel"), "--json"]) == 0
    assert main(["update", str(base), str(root / "train"), "-o", str(root / "alice.mlmodel"), "--epochs", "1",
                 "--json"]) == 0
    for name in ("me", "alice"):
        assert main(["diff", str(base), str(root / f"{name}.mlmodel"), "-o", str(root / f"{name}.mldelta"),
                     "--json"]) == 0
    return root


@pytest.mark.parametrize("order", [("me", "alice"), ("alice", "me")], ids=["knn-first", "update-first"])
def test_merging_a_knn_personalization_with_a_network_update_is_refused_naming_both(sound, tmp_path, capsys, order):
    capsys.readouterr()
    deltas = [sound / f"{name}.mldelta" for name in order]
    code, out, err = _run(capsys, "merge", sound / "sounds.mlmodel", *deltas, "-o", tmp_path / "m.mlmodel")
    assert code == 2 and "internal error" not in err and not (tmp_path / "m.mlmodel").exists()
    assert "incompatible" in err and str(deltas[0]) in err and str(deltas[1]) in err


def test_merging_two_network_updates_still_averages(sound, tmp_path, capsys):
    bob = tmp_path / "bob.mlmodel"
    assert main(["update", str(sound / "sounds.mlmodel"), str(sound / "train"), "-o", str(bob), "--epochs", "2",
                 "--learning-rate", "0.01"]) == 0
    assert main(["diff", str(sound / "sounds.mlmodel"), str(bob), "-o", str(tmp_path / "bob.mldelta")]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, "merge", sound / "sounds.mlmodel", sound / "alice.mldelta", tmp_path / "bob.mldelta",
                          "-o", tmp_path / "m.mlmodel", "--json")
    assert code == 0, err
    alice, bob_delta = Delta.load(sound / "alice.mldelta"), Delta.load(tmp_path / "bob.mldelta")
    assert json.loads(out)["n_examples"] == [alice.n_examples, bob_delta.n_examples]


def test_diff_records_the_real_example_count_of_a_personalization_and_an_update(sound, capsys):
    for name in ("me", "alice"):
        code, out, err = _run(capsys, "diff", sound / "sounds.mlmodel", sound / f"{name}.mlmodel",
                              "-o", sound / f"{name}2.mldelta", "--json")
        report = json.loads(out)
        assert code == 0 and report["n_examples_source"] == "metadata"
        seen = load(sound / f"{name}.mlmodel").spec.description.metadata.userDefined["pippin.examples_seen"]
        assert report["n_examples"] == int(seen) > 1
    me = Delta.load(sound / "me.mldelta")
    # 10 recordings of 1.5 s, 3 windows each (975 ms at 50% overlap): not the old default of 1
    assert me.n_examples == 30 and me.n_examples_source == "metadata"


def test_diff_says_when_the_count_is_a_default(tmp_path, capsys):
    from pippin.spec import io as spec_io

    base, _ = _knn_pair(tmp_path)
    spec = spec_io.load(tmp_path / "u0.mlmodel")
    del spec.description.metadata.userDefined["pippin.examples_seen"]  # an update made by another tool
    uncounted = spec_io.save(spec, tmp_path / "uncounted.mlmodel")
    capsys.readouterr()
    code, out, err = _run(capsys, "diff", base, uncounted, "-o", tmp_path / "d.mldelta")
    assert code == 0 and "1 examples (default" in out and "--examples" in err
    assert Delta.load(tmp_path / "d.mldelta").n_examples_source == "default"
    code, out, err = _run(capsys, "diff", base, uncounted, "-o", tmp_path / "g.mldelta", "--examples", "5", "--json")
    assert code == 0 and json.loads(out)["n_examples"] == 5 and json.loads(out)["n_examples_source"] == "given"


def _knn_pair(tmp_path):
    rng = np.random.default_rng(1)
    base = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1).add_samples(
        rng.normal(size=(6, 2)), list("ababab")).save(tmp_path / "base.mlmodel")
    paths = []
    for user, (point, label) in enumerate([((9, 9), "nine"), ((-9, -9), "minus")]):
        np.savez(tmp_path / f"u{user}.npz", features=np.array([point, point], dtype=np.float32),
                 label=np.array([label, label]))
        assert main(["update", str(base), str(tmp_path / f"u{user}.npz"), "-o", str(tmp_path / f"u{user}.mlmodel")]) == 0
        assert main(["diff", str(base), str(tmp_path / f"u{user}.mlmodel"), "-o",
                     str(tmp_path / f"u{user}.mldelta")]) == 0
        paths.append(tmp_path / f"u{user}.mldelta")
    return base, paths


def _rezip(src, dst, *, manifest=None, members=None):
    """Copy a delta archive, with the manifest (a function of the parsed one) or members replaced."""
    with zipfile.ZipFile(src) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    if manifest is not None:
        contents["manifest.json"] = json.dumps(manifest(json.loads(contents["manifest.json"]))).encode()
    contents.update(members or {})
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return dst


@pytest.mark.parametrize("count", [0, -3, 2.5, "4", None, True, float("nan")])
def test_example_counts_must_be_positive_whole_numbers(tmp_path, capsys, count):
    base, (d0, d1) = _knn_pair(tmp_path)
    bad = _rezip(d0, tmp_path / "bad.mldelta", manifest=lambda m: {**m, "n_examples": count})
    capsys.readouterr()
    code, out, err = _run(capsys, "merge", base, bad, d1, "-o", tmp_path / "m.mlmodel")
    assert code == 2 and "n_examples" in err and "internal error" not in err
    assert not (tmp_path / "m.mlmodel").exists()
    if isinstance(count, int) and not isinstance(count, bool):
        with pytest.raises(PipelineError, match="n_examples"):
            merge(base, [Delta(**{**Delta.load(d0).__dict__, "n_examples": count}), Delta.load(d1)])


@pytest.mark.parametrize("count", ["0", "-1"])
def test_diff_refuses_a_count_below_one(tmp_path, capsys, count):
    base, _ = _knn_pair(tmp_path)
    capsys.readouterr()
    code, out, err = _run(capsys, "diff", base, tmp_path / "u0.mlmodel", "-o", tmp_path / "x.mldelta",
                          "--examples", count)
    assert code == 2 and "n_examples" in err and not (tmp_path / "x.mldelta").exists()


def test_apply_refuses_an_edited_manifest_naming_both_hashes(tmp_path, capsys):
    base, (d0, _) = _knn_pair(tmp_path)

    def relabel(manifest):
        for change in manifest["changes"]:
            if isinstance(change.get("value"), list) and "nine" in change["value"]:
                change["value"] = ["evil" if v == "nine" else v for v in change["value"]]
        return manifest

    edited = _rezip(d0, tmp_path / "edited.mldelta", manifest=relabel)
    assert b"evil" in zipfile.ZipFile(edited).read("manifest.json")
    capsys.readouterr()
    code, out, err = _run(capsys, "apply", base, edited, "-o", tmp_path / "x.mlmodel")
    recorded = Delta.load(d0).updated_sha256
    assert code == 2 and recorded in err and not (tmp_path / "x.mlmodel").exists()
    got = [word.strip(":,") for word in err.split() if len(word.strip(":,")) == 64 and word.strip(":,") != recorded]
    assert got and got[0] == hashlib.sha256(_apply_unchecked(base, edited)).hexdigest()
    code, out, err = _run(capsys, "merge", base, edited, "-o", tmp_path / "m.mlmodel")
    assert code == 2 and recorded in err


def _apply_unchecked(base, delta_path):
    from pippin.pipelines.personalize.delta_walk import replay
    from pippin.pipelines.personalize.delta_wire import reorder_maps
    from pippin.spec import Model
    from pippin.spec import io as spec_io

    delta = Delta.load(delta_path)
    spec = spec_io.load(base)
    for change in delta.changes:
        replay(spec, change, delta.arrays)
    return reorder_maps(spec.SerializeToString(), Model.DESCRIPTOR, delta.map_orders)


def test_a_small_delta_that_inflates_past_the_limit_is_refused(tmp_path, capsys):
    base, (d0, _) = _knn_pair(tmp_path)
    bomb = tmp_path / "bomb.mldelta"
    with zipfile.ZipFile(d0) as archive:
        manifest = archive.read("manifest.json")
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", manifest)
        with archive.open("arrays/0.npy", "w") as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (100 << 20,)})
            member.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(400):  # 400 MiB of zeros, about 400 KB compressed
                member.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    capsys.readouterr()
    code, out, err = _run(capsys, "apply", base, bomb, "-o", tmp_path / "x.mlmodel")
    assert code == 2 and "not a pippin delta file" in err and "limit" in err


def _corruptions(d0: bytes):
    manifest_at = d0.find(b"manifest.json")
    flipped = bytearray(d0)
    for i in range(manifest_at + 40, manifest_at + 60):
        flipped[i] ^= 0xFF
    yield "flipped compressed bytes", bytes(flipped)
    yield "truncated", d0[: len(d0) // 2]
    yield "empty", b""
    yield "not a zip", b"hello, this is text"


@pytest.mark.parametrize("case", range(4))
def test_archive_faults_are_one_delta_error(tmp_path, capsys, case):
    base, (d0, _) = _knn_pair(tmp_path)
    name, data = list(_corruptions(d0.read_bytes()))[case]
    bad = tmp_path / "bad.mldelta"
    bad.write_bytes(data)
    capsys.readouterr()
    code, out, err = _run(capsys, "apply", base, bad, "-o", tmp_path / "x.mlmodel")
    assert code == 2 and "not a pippin delta file" in err and "internal error" not in err, name
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edit", [
    lambda m: {**m, "changes": [{**c, "array": 99} if "array" in c else c for c in m["changes"]]},
    lambda m: {**m, "changes": "everything"},
    lambda m: {**m, "changes": [{"path": "knearestNeighborsClassifier.nope", "op": "set", "value": 1}]},
    lambda m: {**m, "changes": [{"path": "description.predictedFeatureName", "op": "set", "value": [1, 2]}]},
    lambda m: {**m, "map_orders": {"x": 3}},
    lambda m: {**m, "base_sha256": 7},
    lambda m: [m],
], ids=["array-index", "changes-type", "unknown-field", "wrong-value-type", "map-orders", "hash-type", "not-object"])
def test_malformed_manifests_are_one_delta_error(tmp_path, capsys, edit):
    base, (d0, _) = _knn_pair(tmp_path)
    bad = _rezip(d0, tmp_path / "bad.mldelta", manifest=edit)
    capsys.readouterr()
    code, out, err = _run(capsys, "apply", base, bad, "-o", tmp_path / "x.mlmodel")
    assert code == 2 and "internal error" not in err and not (tmp_path / "x.mlmodel").exists()
    assert "not a pippin delta file" in err or "delta was made for base" in err


def test_an_array_needing_pickle_is_refused(tmp_path, capsys):
    base, (d0, _) = _knn_pair(tmp_path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad = _rezip(d0, tmp_path / "bad.mldelta", members={"arrays/0.npy": buffer.getvalue()})
    capsys.readouterr()
    code, out, err = _run(capsys, "apply", base, bad, "-o", tmp_path / "x.mlmodel")
    assert code == 2 and "not a pippin delta file" in err and "internal error" not in err


def test_mutated_deltas_only_ever_give_pippin_errors(tmp_path):
    """300 seeded mutants (random bytes in the archive, random values in the manifest): load, apply and merge
    raise nothing but Pippin errors."""
    import random

    from pippin.pipelines.personalize.delta import apply_bytes
    from pippin.spec.errors import PippinError

    base, (d0, d1) = _knn_pair(tmp_path)
    raw = d0.read_bytes()
    with zipfile.ZipFile(d0) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    rng = random.Random(0)
    odd = [None, -1, 0, 2 ** 70, "x", [], {}, 1.5, True, float("inf"), "neuralNetwork.layers[99].x", 10 ** 9]

    def mutate(obj):
        if isinstance(obj, dict) and obj:
            key = rng.choice(list(obj))
            obj[key] = rng.choice(odd) if rng.random() < 0.3 else mutate(obj[key])
            return obj
        if isinstance(obj, list) and obj:
            i = rng.randrange(len(obj))
            obj[i] = mutate(obj[i])
            return obj
        return rng.choice(odd + [obj])

    other = Delta.load(d1)
    for trial in range(300):
        if trial % 2:
            data = bytearray(raw)
            for _ in range(rng.randint(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            (tmp_path / "m.mldelta").write_bytes(bytes(data))
        else:
            _rezip(d0, tmp_path / "m.mldelta", manifest=lambda m: mutate(json.loads(json.dumps(manifest))))
        try:
            delta = Delta.load(tmp_path / "m.mldelta")
            apply_bytes(base, delta)
            merge(base, [delta, other])
        except PippinError:
            pass
