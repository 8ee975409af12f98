"""Federated rounds on Flower's simulation engine (Ray), optionally with SecAgg+ secure aggregation.

``simulate(start, head, parts, rounds=..., out=...)`` runs the same rounds as
``federated_server.federate`` (the same Flower strategy, the same ``CoreMLClient``, the
same model file written after every round), but the way Flower runs a simulation:
a ``ServerApp`` and a ``ClientApp`` on Flower's Simulation Runtime
(``flwr.simulation.run_simulation``), one virtual SuperNode per client, the clients
running in Ray worker processes (``pip install "pippin[federated-simulation]"``:
``flwr[simulation]``, which adds Ray). Each client's data is written once to a
``.npz`` file in a temporary folder and read by the worker that runs the client,
so no data travels in Flower's messages.

``secure_aggregation=True`` runs Flower's SecAgg+ (``SecAggPlusWorkflow`` on the
server, ``secaggplus_mod`` on the clients): each client sends its example-weighted,
quantized parameters masked with pairwise and self masks; the server learns only
their sum. It needs at least three clients per round. Flower's SecAgg+ quantizes
each weighted parameter, clipped to ``[-clipping_range, clipping_range]`` (8 by
default, ``sec_agg_options``) into 2^22 levels, so the aggregate differs from the
plain average by at most about 4e-6 per weight; weights beyond the range are clipped.

Flower's telemetry (an HTTPS event per run) is turned off unless
``FLWR_TELEMETRY_ENABLED`` is set: Pippin runs without network beyond loopback.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from .federated import CoreMLClient
from .federated_server import recorded_strategy

__all__ = ["simulate", "ray_available"]

logger = logging.getLogger(__name__)

_DATA: dict = {}  # per Ray worker process: client data read from its file, by path


def ray_available() -> bool:
    """Whether Flower's simulation engine can run here (``flwr`` and ``ray`` import)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("flwr", "ray"))


def _save_part(path: Path, train: dict, test: dict) -> None:
    arrays = {}
    for prefix, data in (("train/", train), ("test/", test or {})):
        for key, value in data.items():
            value = np.asarray(value)
            arrays[prefix + key] = value.astype(str) if value.dtype == object else value
    np.savez(path, **arrays)


def _load_part(path: str) -> tuple[dict, dict]:
    if path not in _DATA:
        with np.load(path, allow_pickle=False) as archive:
            train = {k[6:]: archive[k] for k in archive.files if k.startswith("train/")}
            test = {k[5:]: archive[k] for k in archive.files if k.startswith("test/")}
        _DATA[path] = (train, test or None)
    return _DATA[path]


def _client_fn(model_bytes: bytes, paths: list, epochs, context):
    """Flower's ``client_fn``: the ``CoreMLClient`` of this SuperNode's partition (runs in a Ray worker)."""
    spec = Model()
    spec.ParseFromString(model_bytes)
    train, test = _load_part(paths[int(context.node_config["partition-id"])])
    return CoreMLClient(spec, train, test, epochs=epochs).to_client()


def _telemetry_off() -> None:
    if "FLWR_TELEMETRY_ENABLED" in os.environ:
        return
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # read by flwr at import, and inherited by the Ray workers
    try:
        from flwr.supercore import telemetry
    except ImportError:
        return
    telemetry.FLWR_TELEMETRY_ENABLED = "0"  # already imported: the value it checks before each event


def simulate(start: Model, head: Model, parts: dict, *, rounds: int, out, epochs: int | None = None,
             strategy: str = "fedavg", fraction: float = 1.0, dp_clip: float | None = None,
             dp_noise: float | None = None, dp_side: str = "client", seed: int = 0,
             secure_aggregation: bool = False, sec_agg_options: dict | None = None, num_cpus: int | None = None,
             on_round: Callable[[dict], None] | None = None, **strategy_options) -> list[dict]:
    """Run ``rounds`` federated rounds on Flower's simulation engine; ``out`` is rewritten after each.

    Parameters
    ----------
    start : pippin.spec.Model
        The model written to ``out`` (its updatable weights replaced by each round's).
    head : pippin.spec.Model
        The model each client trains: ``start`` itself, or its updatable last stage
        (``federated.split_head``) when the client data are the frozen stages' outputs.
    parts : dict of client id to (train, test)
        Each client's data as ``CoreMLClient`` takes it (``federated.client_data``).
    rounds, out, strategy, fraction, dp_clip, dp_noise, dp_side, seed, on_round, **strategy_options
        As ``federated_server.federate``.
    epochs : int, optional
        Local epochs per round (default: the file's).
    secure_aggregation : bool
        Aggregate with Flower's SecAgg+ (at least 3 clients per round).
    sec_agg_options : dict, optional
        ``SecAggPlusWorkflow`` arguments (default ``num_shares=3, reconstruction_threshold=2``,
        ``max_weight`` the largest client's example count).
    num_cpus : int, optional
        CPUs Ray may use (default: all); each client takes one while it runs.

    Returns
    -------
    history : list of dict
        As ``federate``'s.
    """
    if not ray_available():
        raise PipelineError("Flower's simulation engine needs Ray, which is not installed",
                            hint="pip install \"pippin[federated-simulation]\", or use the default in-process engine")
    if rounds < 1:
        raise PipelineError(f"rounds={rounds!r}, expected at least 1")
    if not parts:
        raise PipelineError("no clients to federate")
    n_fit = max(1, int(len(parts) * fraction)) if 0 < fraction <= 1 else 0
    if secure_aggregation and 0 < n_fit < 3:  # (a bad fraction is make_strategy's error)
        raise PipelineError(f"secure aggregation needs at least 3 clients per round, got {n_fit}",
                            hint="more clients, or a larger --fraction")
    _telemetry_off()
    import random

    from flwr.client import ClientApp
    from flwr.server import LegacyContext, ServerApp, ServerAppComponents, ServerConfig
    from flwr.simulation import run_simulation

    recorded, history = recorded_strategy(start, len(parts), out=out, strategy=strategy, fraction=fraction,
                                          dp_clip=dp_clip, dp_noise=dp_noise, dp_side=dp_side, on_round=on_round,
                                          **strategy_options)
    config = ServerConfig(num_rounds=int(rounds))
    names = sorted(parts, key=str)
    with tempfile.TemporaryDirectory(prefix="pippin-federate-") as tmp:
        paths = []
        for i, name in enumerate(names):
            paths.append(str(Path(tmp) / f"client{i}.npz"))
            _save_part(Path(paths[-1]), *parts[name])
        client_fn = partial(_client_fn, head.SerializeToString(), paths, epochs)
        if secure_aggregation:
            from flwr.client.mod import secaggplus_mod
            from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

            options = {"num_shares": 3, "reconstruction_threshold": 2,
                       "max_weight": float(max(len(next(iter(tr.values()))) for tr, _ in parts.values()))}
            options.update(sec_agg_options or {})
            server_app = ServerApp()

            @server_app.main()
            def _main(grid, context):
                context = LegacyContext(context=context, config=config, strategy=recorded)
                DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(**options))(grid, context)

            client_app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
        else:
            server_app = ServerApp(server_fn=lambda context: ServerAppComponents(strategy=recorded, config=config))
            client_app = ClientApp(client_fn=client_fn)
        backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                   "init_args": {"num_cpus": int(num_cpus or os.cpu_count() or 1), "include_dashboard": False,
                                 "logging_level": "ERROR", "log_to_driver": False}}
        state = random.getstate()
        random.seed(seed)  # Flower samples clients with Python's random
        try:
            run_simulation(server_app=server_app, client_app=client_app, num_supernodes=len(names),
                           backend_config=backend)
        finally:
            random.setstate(state)
    if len(history) < rounds:
        raise PipelineError(f"Flower's simulation stopped after {len(history)} of {rounds} rounds; see its log above")
    return history
