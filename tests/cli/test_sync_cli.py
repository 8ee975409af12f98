"""``pippin sync`` on a direct store (a SQLite file), issue 16's backup-and-sync half.

- push then pull on a fresh device gives the personal model byte for byte, and predicts the same;
- a foreign-base delta, a tampered delta (any one byte changed), a replayed old version and an
  oversized delta are refused with clear messages, and nothing is stored;
- two devices pushing against the same version: the second is told to pull the newer one;
- status reports versions, devices and the base hash.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the sync extra is not installed (pip install 'pippin[sync]')")

from pippin.pipelines import KNearestNeighborsClassifier, load  # noqa: E402
from pippin.pipelines.cli.main import main  # noqa: E402
from pippin.pipelines.personalize.delta import diff  # noqa: E402
from pippin.pipelines.personalize.sync import DeltaStore, SyncError  # noqa: E402


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _models(tmp_path, n_personal=2, *, seed=0, name="base"):
    """A small k-NN base and ``n_personal`` personalizations of it (one extra example each)."""
    rng = np.random.default_rng(seed)
    base = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1).add_samples(
        rng.normal(size=(6, 2)), list("ababab"))
    base_path = base.save(tmp_path / f"{name}.mlmodel")
    personal = []
    for i in range(n_personal):
        spec = load(base_path).spec
        knn = spec.kNearestNeighborsClassifier
        vec = knn.nearestNeighborsIndex.floatSamples.add()
        vec.vector.extend([9.0 + i, 9.0 - i])
        knn.stringClassLabels.vector.append(f"mine{i}")
        out = tmp_path / f"{name}_p{i}.mlmodel"
        out.write_bytes(spec.SerializeToString())
        personal.append(out)
    return base_path, personal


@pytest.fixture
def setup(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(tmp_path / "state1.json"))
    base, personal = _models(tmp_path)
    db = tmp_path / "store.db"
    code, out, _ = _run(capsys, "sync", "add-user", "--db", db, "--user", "alice")
    assert code == 0 and len(out.strip()) >= 32
    return tmp_path, base, personal, db


def _status(capsys, db, user="alice"):
    code, out, err = _run(capsys, "sync", "status", "--store", db, "--user", user, "--json")
    assert code == 0, err
    return json.loads(out)


def test_push_then_pull_on_a_fresh_device_is_byte_identical(setup, capsys, monkeypatch):
    tmp_path, base, personal, db = setup
    code, out, err = _run(capsys, "sync", "push", personal[0], "--base", base, "--store", db, "--user", "alice",
                          "--device", "phone", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == 1
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(tmp_path / "state2.json"))  # device 2: a fresh install
    code, out, err = _run(capsys, "sync", "pull", "--base", base, "--store", db, "--user", "alice",
                          "-o", tmp_path / "device2.mlmodel")
    assert code == 0, err
    assert (tmp_path / "device2.mlmodel").read_bytes() == personal[0].read_bytes()
    x = {"features": np.array([[9, 9], [0.1, 0.2]], dtype=np.float32)}
    assert list(load(tmp_path / "device2.mlmodel").predict_batch(x)["label"]) == \
        list(load(personal[0]).predict_batch(x)["label"])
    # device 2 builds on version 1 (its state says so) and pushes version 2
    code, _, err = _run(capsys, "sync", "push", personal[1], "--base", base, "--store", db, "--user", "alice",
                        "--device", "tablet")
    assert code == 0, err
    status = _status(capsys, db)
    assert status["latest"] == 2 and status["devices"] == ["phone", "tablet"]
    assert status["base_sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    assert [v["device"] for v in status["versions"]] == ["phone", "tablet"]
    code, _, _ = _run(capsys, "sync", "pull", "--base", base, "--store", db, "--user", "alice",
                      "-o", tmp_path / "again.mlmodel")
    assert (tmp_path / "again.mlmodel").read_bytes() == personal[1].read_bytes()
    code, _, _ = _run(capsys, "sync", "pull", "--base", base, "--store", db, "--user", "alice", "--version", "1",
                      "-o", tmp_path / "old.mlmodel")
    assert code == 0 and (tmp_path / "old.mlmodel").read_bytes() == personal[0].read_bytes()


def test_two_devices_pushing_against_the_same_version_the_second_must_pull(setup, capsys, monkeypatch):
    tmp_path, base, personal, db = setup
    assert _run(capsys, "sync", "push", personal[0], "--base", base, "--store", db, "--user", "alice",
                "--device", "d1")[0] == 0
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(tmp_path / "state2.json"))  # device 2 never pulled
    code, _, err = _run(capsys, "sync", "push", personal[1], "--base", base, "--store", db, "--user", "alice",
                        "--device", "d2")
    assert code == 2
    assert "version 1 is newer than your parent 0; pull version 1 first" in err
    assert _status(capsys, db)["latest"] == 1


def test_a_foreign_base_delta_is_refused_naming_both_hashes(setup, capsys):
    tmp_path, base, personal, db = setup
    assert _run(capsys, "sync", "push", personal[0], "--base", base, "--store", db, "--user", "alice")[0] == 0
    other, other_personal = _models(tmp_path, 1, seed=7, name="other")
    code, _, err = _run(capsys, "sync", "push", other_personal[0], "--base", other, "--store", db, "--user",
                        "alice", "--parent", "1")
    assert code == 2
    assert hashlib.sha256(other.read_bytes()).hexdigest() in err
    assert hashlib.sha256(base.read_bytes()).hexdigest() in err
    assert _status(capsys, db)["latest"] == 1


def _delta_bytes(base, personal, tmp_path, name="d"):
    return diff(base, personal).save(tmp_path / f"{name}.mldelta").read_bytes()


def test_any_one_byte_changed_is_refused_and_nothing_stored(setup):
    tmp_path, base, personal, db = setup
    data = _delta_bytes(base, personal[0], tmp_path)
    sent = hashlib.sha256(data).hexdigest()  # what the device computed before the bytes were changed
    store = DeltaStore(db)
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        with pytest.raises(SyncError, match="changed on the way"):
            store.push("alice", bytes(tampered), parent=0, sha256=sent)
    # changed, and the digest recomputed to match: the structure check (ZIP CRC, format) refuses it
    tampered = bytearray(data)
    tampered[len(data) // 4] ^= 0xFF
    with pytest.raises(SyncError, match="not a pippin delta file"):
        store.push("alice", bytes(tampered), parent=0, sha256=hashlib.sha256(tampered).hexdigest())
    assert store.status("alice")["latest"] == 0 and store.status("alice")["base_sha256"] is None


def test_a_replayed_old_version_is_refused(setup):
    tmp_path, base, personal, db = setup
    store = DeltaStore(db)
    old = _delta_bytes(base, personal[0], tmp_path, "old")
    new = _delta_bytes(base, personal[1], tmp_path, "new")
    assert store.push("alice", old, parent=0, sha256=hashlib.sha256(old).hexdigest())["version"] == 1
    assert store.push("alice", new, parent=1, sha256=hashlib.sha256(new).hexdigest())["version"] == 2
    for parent in (0, 1, 2):  # the old request as sent, or re-aimed at the current head
        with pytest.raises(SyncError, match="already stored as version 1 \\(a replay\\)"):
            store.push("alice", old, parent=parent, sha256=hashlib.sha256(old).hexdigest())
    assert store.status("alice")["latest"] == 2
    assert store.fetch("alice")[1] == new


def test_an_oversized_delta_is_refused(setup):
    tmp_path, base, personal, db = setup
    data = _delta_bytes(base, personal[0], tmp_path)
    store = DeltaStore(db, max_bytes=len(data) - 1)
    with pytest.raises(SyncError, match=f"the delta is {len(data)} bytes, more than the store's limit"):
        store.push("alice", data, parent=0, sha256=hashlib.sha256(data).hexdigest())
    assert store.status("alice")["latest"] == 0


def test_unknown_user_and_a_server_url_as_db_are_clear_errors(setup, capsys):
    tmp_path, base, personal, db = setup
    code, _, err = _run(capsys, "sync", "status", "--store", db, "--user", "bob")
    assert code == 2 and "no user 'bob'" in err
    code, _, err = _run(capsys, "sync", "add-user", "--db", db, "--user", "alice")
    assert code == 2 and "already exists" in err
    code, _, err = _run(capsys, "sync", "add-user", "--db", db, "--user", "a/b")
    assert code == 2 and "must be 1 to 200 letters" in err
    code, _, err = _run(capsys, "sync", "status", "--store", "http://127.0.0.1:9", "--user", "alice")
    assert code == 2 and "a token is required" in err
    code, _, err = _run(capsys, "sync", "serve", "--db", "http://127.0.0.1:9")
    assert code == 2 and "is a server URL" in err
    code, _, err = _run(capsys, "sync", "status", "--store", tmp_path / "typo.db", "--user", "alice")
    assert code == 2 and "no such store file" in err and not (tmp_path / "typo.db").exists()


def test_a_stale_state_file_does_not_block_a_new_store(setup, capsys):
    tmp_path, base, personal, db = setup
    assert _run(capsys, "sync", "push", personal[0], "--base", base, "--store", db, "--user", "alice")[0] == 0
    db.unlink()  # the store is recreated; this device's state still says version 1
    assert _run(capsys, "sync", "add-user", "--db", db, "--user", "alice")[0] == 0
    code, out, err = _run(capsys, "sync", "push", personal[1], "--base", base, "--store", db, "--user", "alice",
                          "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == 1


def test_a_token_never_starts_with_a_dash_so_the_cli_can_take_it(setup, capsys, monkeypatch):
    """A bare urlsafe token begins with '-' one time in 64; ``--token -x`` is then an unknown option to argparse."""
    import pippin.pipelines.personalize.sync.store as store_module
    tmp_path, base, personal, db = setup
    monkeypatch.setattr(store_module.secrets, "token_urlsafe", lambda n: "-" + "A" * 42)
    token = DeltaStore(db).add_user("dash")
    assert not token.startswith("-")
    code, out, _ = _run(capsys, "sync", "status", "--store", "http://127.0.0.1:9", "--user", "dash",
                        "--token", token, "--json")
    error = json.loads(out)["error"]
    assert code == 2 and error["type"] == "SyncError" and "cannot reach" in error["message"], error
