"""``pippin sync serve``: the HTTP store, on 127.0.0.1 only (issue 16's backup-and-sync half).

- push/pull through the server with a token gives the personal model byte for byte;
- another user's token gets 403, the same answer whether the user exists or not; no token 401;
- a delta changed on the way, a replayed old version and an oversized upload are refused, nothing stored;
- 50 pushes from 10 simulated devices at once (bounded retry loops) lose no acknowledged delta;
- killing the server mid-write leaves the store consistent: every acknowledged version intact.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the sync extra is not installed (pip install 'pippin[sync]')")
pytest.importorskip("starlette", reason="the sync extra is not installed (pip install 'pippin[sync]')")
pytest.importorskip("uvicorn", reason="the sync extra is not installed (pip install 'pippin[sync]')")

from pippin.pipelines import KNearestNeighborsClassifier, load  # noqa: E402
from pippin.pipelines.cli.main import main  # noqa: E402
from pippin.pipelines.personalize.delta import diff  # noqa: E402
from pippin.pipelines.personalize.sync import DeltaStore, HttpClient, SyncError  # noqa: E402

STARTUP_SECONDS = 120  # a loaded CI machine imports slowly; the loop ends as soon as the server answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db, *extra) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = ["sync", "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port), *map(str, extra)]
    proc = subprocess.Popen([sys.executable, "-c", f"import sys; from pippin.pipelines.cli.main import main; "
                                                   f"sys.exit(main({argv!r}))"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2) as r:
                if json.loads(r.read())["ok"]:
                    return proc, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def deltas(tmp_path_factory):
    """A k-NN base and 60 distinct deltas of it (one personal example each), as bytes; and their models."""
    root = tmp_path_factory.mktemp("sync_server")
    rng = np.random.default_rng(3)
    base = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1).add_samples(
        rng.normal(size=(6, 2)), list("ababab")).save(root / "base.mlmodel")
    data, models = [], []
    for i in range(60):
        spec = load(base).spec
        knn = spec.kNearestNeighborsClassifier
        knn.nearestNeighborsIndex.floatSamples.add().vector.extend([10.0 + i, -float(i)])
        knn.stringClassLabels.vector.append(f"mine{i}")
        path = root / f"p{i}.mlmodel"
        path.write_bytes(spec.SerializeToString())
        models.append(path)
        data.append(diff(base, path).save(root / f"p{i}.mldelta").read_bytes())
    return root, base, models, data


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One server for the tests that need no special options (each test adds its own users)."""
    db = tmp_path_factory.mktemp("sync_db") / "store.db"
    DeltaStore(db).close()
    proc, url = _start(db)
    yield db, url
    _stop(proc)


@pytest.fixture
def server(running, request):
    """(url, {"alice": name, "bob": name}, {"alice": token, "bob": token}): two fresh users of the running
    server, named per test."""
    db, url = running
    store = DeltaStore(db)
    names = {u: f"{u}-{request.node.name[5:25]}" for u in ("alice", "bob")}
    tokens = {u: store.add_user(name) for u, name in names.items()}
    store.close()
    return url, names, tokens


def _raw(url, method="GET", body=None, token=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_cli_push_pull_through_the_server_is_byte_identical(server, deltas, tmp_path, capsys, monkeypatch):
    url, names, tokens = server
    _, base, models, _ = deltas
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(tmp_path / "device1.json"))
    assert main(["sync", "push", str(models[0]), "--base", str(base), "--store", url, "--user", names["alice"],
                 "--token", tokens["alice"], "--device", "phone"]) == 0
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(tmp_path / "device2.json"))
    assert main(["sync", "pull", "--base", str(base), "--store", url, "--user", names["alice"], "--token", tokens["alice"],
                 "-o", str(tmp_path / "d2.mlmodel")]) == 0
    assert (tmp_path / "d2.mlmodel").read_bytes() == models[0].read_bytes()
    capsys.readouterr()
    assert main(["sync", "status", "--store", url, "--user", names["alice"], "--token", tokens["alice"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["latest"] == 1 and status["devices"] == ["phone"]
    assert status["base_sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()


def test_another_users_token_gets_403_and_learns_nothing(server, deltas):
    url, names, tokens = server
    _, _, _, data = deltas
    alice = HttpClient(url, names["alice"], tokens["alice"])
    alice.push(data[0], parent=0, device="phone")
    answers = []
    for user in (names["alice"], "nobody"):  # an existing user and one that does not exist: the same answer
        for method, path, body in (("GET", "/status", None), ("GET", "/deltas/latest", None),
                                   ("GET", "/deltas/1", None), ("POST", "/deltas?parent=1", data[1])):
            answers.append(_raw(f"{url}/v1/users/{user}{path}", method, body, token=tokens["bob"],
                                headers={"X-Pippin-SHA256": hashlib.sha256(data[1]).hexdigest()}))
    assert {code for code, _ in answers} == {403}
    assert len({body for _, body in answers}) == 1
    assert names["alice"].encode() not in answers[0][1] and b"nobody" not in answers[0][1]
    assert _raw(f"{url}/v1/users/{names['alice']}/status")[0] == 401
    assert _raw(f"{url}/v1/users/{names['alice']}/status", token="not-a-token")[0] == 401
    with pytest.raises(SyncError, match="may not access"):
        HttpClient(url, names["alice"], tokens["bob"]).status()
    assert alice.status()["latest"] == 1
    assert HttpClient(url, names["bob"], tokens["bob"]).status()["latest"] == 0


def test_changed_replayed_and_oversized_uploads_are_refused_nothing_stored(deltas, tmp_path):
    _, _, _, data = deltas
    db = tmp_path / "store.db"
    token = DeltaStore(db).add_user("alice")
    limit = max(len(d) for d in data[:2]) + 10
    proc, url = _start(db, "--max-bytes", limit)
    try:
        alice = HttpClient(url, "alice", token)
        assert alice.push(data[0], parent=0)["version"] == 1
        assert alice.push(data[1], parent=1)["version"] == 2
        push_url = f"{url}/v1/users/alice/deltas?parent=2"
        for i in (0, len(data[2]) // 3, len(data[2]) // 2, len(data[2]) - 1):  # one byte changed on the way
            tampered = bytearray(data[2])
            tampered[i] ^= 0x10
            code, body = _raw(push_url, "POST", bytes(tampered), token,
                              {"X-Pippin-SHA256": hashlib.sha256(data[2]).hexdigest()})
            assert code == 400 and "changed on the way" in json.loads(body)["error"]["message"]
        for parent in (0, 2):  # version 1's request replayed as it was, and re-aimed at the head
            code, body = _raw(f"{url}/v1/users/alice/deltas?parent={parent}", "POST", data[0], token,
                              {"X-Pippin-SHA256": hashlib.sha256(data[0]).hexdigest()})
            assert code == 409 and "already stored as version 1 (a replay)" in json.loads(body)["error"]["message"]
        big = data[2] + b"\0" * limit
        code, body = _raw(push_url, "POST", big, token, {"X-Pippin-SHA256": hashlib.sha256(big).hexdigest()})
        assert code == 413 and f"larger than the server's limit of {limit} bytes" in json.loads(body)["error"]["message"]
        with pytest.raises(SyncError, match=f"the delta is {len(big)} bytes, more than the server's limit of {limit}"):
            alice.push(big, parent=2)  # the client asks the server's limit before it uploads
        status = alice.status()
        assert status["latest"] == 2 and [v["delta_sha256"] for v in status["versions"]] == [
            hashlib.sha256(d).hexdigest() for d in data[:2]]
    finally:
        _stop(proc)


def _device(url, user, token, name, mine, acked, errors, max_attempts=400, cut=None):
    """Push each delta of ``mine``: read the head, push on it, on 409 read again (bounded)."""
    client = HttpClient(url, user, token)
    attempts = 0
    for data in mine:
        while True:
            attempts += 1
            if attempts > max_attempts:
                errors.append(f"{name}: gave up after {max_attempts} attempts")
                return
            try:
                parent = client.status()["latest"]
                result = client.push(data, parent=parent, device=name)
            except SyncError as exc:
                if exc.status == 409:
                    continue
                if exc.status == 503 and cut is not None:  # the server is gone (the kill test)
                    cut.append(name)
                    return
                errors.append(f"{name}: {exc}")
                return
            acked.append((result["version"], hashlib.sha256(data).hexdigest(), name))
            break


def test_50_concurrent_pushes_from_10_devices_lose_nothing(server, deltas):
    url, names, tokens = server
    _, _, _, data = deltas
    acked, errors = [], []
    threads = [threading.Thread(target=_device, args=(url, names["alice"], tokens["alice"], f"device{d}", data[5 * d:5 * d + 5],
                                                      acked, errors)) for d in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert len(acked) == 50
    status = HttpClient(url, names["alice"], tokens["alice"]).status()
    assert [v["version"] for v in status["versions"]] == list(range(1, 51))
    stored = {v["version"]: (v["delta_sha256"], v["device"]) for v in status["versions"]}
    for version, digest, device in acked:
        assert stored[version] == (digest, device)
    assert len(status["devices"]) == 10


def test_killing_the_server_mid_write_keeps_every_acknowledged_version(deltas, tmp_path):
    _, _, _, data = deltas
    db = tmp_path / "store.db"
    token = DeltaStore(db).add_user("alice")
    proc, url = _start(db)
    acked, errors, cut = [], [], []
    threads = [threading.Thread(target=_device, args=(url, "alice", token, f"device{d}", data[6 * d:6 * d + 6],
                                                      acked, errors), kwargs={"cut": cut}) for d in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acked) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()  # SIGKILL while the devices are still pushing
    proc.wait()
    for t in threads:
        t.join(timeout=60)
    assert len(acked) >= 8 and not errors and cut  # devices were still pushing when the server died
    store = DeltaStore(db)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    status = store.status("alice")
    versions = [v["version"] for v in status["versions"]]
    assert versions == list(range(1, len(versions) + 1))
    stored = {v["version"]: v["delta_sha256"] for v in status["versions"]}
    for version, digest, _ in acked:
        assert stored[version] == digest
    latest, _ = store.fetch("alice")
    assert latest == max(versions) >= max(v for v, _, _ in acked)
    # the store works on: a restarted server takes the next version
    store.close()
    proc, url = _start(db)
    try:
        client = HttpClient(url, "alice", token)
        assert client.push(data[-1], parent=latest)["version"] == latest + 1
    finally:
        _stop(proc)
