"""The delta store on PostgreSQL (the distribution's server, a throwaway cluster on 127.0.0.1).

Skips when PostgreSQL's ``initdb`` or the ``psycopg`` driver is absent (``pip install
"pippin[sync,postgres]"``; ``apt-get install postgresql``). Checks the same contract as on
SQLite: byte-identical round trip, the base and parent rules, and concurrent pushes
(on PostgreSQL two writers that read the same head meet the primary key: the loser is
told to pull, nothing is overwritten).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the sync extra is not installed (pip install 'pippin[sync]')")
pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed (pip install 'pippin[postgres]')")

from pippin.pipelines import KNearestNeighborsClassifier, load  # noqa: E402
from pippin.pipelines.personalize.delta import apply_bytes, diff  # noqa: E402
from pippin.pipelines.personalize.sync import DeltaStore, SyncError  # noqa: E402


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    root = "/usr/lib/postgresql"
    for version in sorted(os.listdir(root), reverse=True) if os.path.isdir(root) else []:
        path = os.path.join(root, version, "bin", name)
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = tmp_path_factory.mktemp("pg")
    data = root / "data"
    prefix = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the distribution's postgres user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        prefix = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        for parent in list(root.parents)[:3]:
            os.chmod(parent, os.stat(parent).st_mode | 0o011)  # let postgres reach the folder
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180)
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"], **run)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "120", "-o",
                        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                        "-c fsync=on", "start"], **run)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"could not start a PostgreSQL cluster: {getattr(exc, 'stderr', b'') or exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


@pytest.fixture(scope="module")
def deltas(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg_models")
    rng = np.random.default_rng(11)
    base = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1).add_samples(
        rng.normal(size=(6, 2)), list("ababab")).save(root / "base.mlmodel")
    models, data = [], []
    for i in range(21):
        spec = load(base).spec
        spec.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples.add().vector.extend([5.0 + i, 1.0])
        spec.kNearestNeighborsClassifier.stringClassLabels.vector.append(f"p{i}")
        models.append(spec.SerializeToString())
        data.append(diff(base, models[-1]).save(root / f"{i}.mldelta").read_bytes())
    return base, models, data


def _push(store, user, data, parent, device="d"):
    return store.push(user, data, parent=parent, sha256=hashlib.sha256(data).hexdigest(), device=device)


def test_round_trip_and_rules_on_postgres(postgres, deltas):
    base, models, data = deltas
    store = DeltaStore(postgres)
    store.add_user("carol")
    assert _push(store, "carol", data[0], 0)["version"] == 1
    version, got = store.fetch("carol")
    assert version == 1 and apply_bytes(base, _loaded(got)) == models[0]
    with pytest.raises(SyncError, match="pull version 1 first"):
        _push(store, "carol", data[1], 0)
    with pytest.raises(SyncError, match="a replay"):
        _push(store, "carol", data[0], 1)
    assert store.status("carol")["latest"] == 1
    store.close()


def _loaded(data: bytes):
    import tempfile

    from pippin.pipelines.personalize.delta import Delta

    with tempfile.NamedTemporaryFile(suffix=".mldelta") as f:
        f.write(data)
        f.flush()
        return Delta.load(f.name)


def test_concurrent_pushes_on_postgres_lose_nothing(postgres, deltas):
    _, _, data = deltas
    store = DeltaStore(postgres)
    store.add_user("dave")
    acked, errors = [], []

    def device(d):
        for item in data[1 + 4 * d:5 + 4 * d]:
            for _ in range(200):
                try:
                    result = _push(store, "dave", item, store.status("dave")["latest"], f"dev{d}")
                except SyncError as exc:
                    if exc.status == 409:
                        continue
                    errors.append(str(exc))
                    return
                acked.append((result["version"], hashlib.sha256(item).hexdigest()))
                break

    threads = [threading.Thread(target=device, args=(d,)) for d in range(5)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(acked) == 20, (errors, time.monotonic() - start)
    stored = {v["version"]: v["delta_sha256"] for v in store.status("dave")["versions"]}
    assert sorted(stored) == list(range(1, 21))
    assert all(stored[v] == digest for v, digest in acked)
    store.close()
