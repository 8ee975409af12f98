"""The server side of federated learning on Core ML files, run on Flower (``pip install "pippin[federated]"``).

``federate(start, clients, rounds=...)`` runs Flower's own server loop
(``flwr.server.Server``: client sampling, concurrent fits, failure handling,
evaluation) with one of Flower's strategies (``FedAvg`` by default, ``FedProx`` or
``FedAdam``), optionally wrapped in Flower's differential-privacy wrappers (each client's update is
clipped to L2 norm ``dp_clip``, on the client by default --
``DifferentialPrivacyClientSideFixedClipping``, whose clipping the client does with
Flower's own function, as Flower's ``fixedclipping_mod`` would -- or on the server,
``DifferentialPrivacyServerSideFixedClipping``; Gaussian noise of standard deviation
``dp_noise * dp_clip / n_sampled`` is added to the average on the server). The clients are ``CoreMLClient`` objects in
this process, reached through a small in-process ``ClientProxy`` (one virtual client
each; no network, no Ray).

After every round the aggregated parameters are written into a copy of the start
model (``federated.with_parameters``) and saved atomically to ``out``, so ``out`` is
always a valid model that differs from the start only in the updatable weights.

Notes
-----
FedProx sends ``proximal_mu`` (``make_strategy(proximal_mu=...)``, default 0.1) in the fit
config; ``CoreMLClient.fit`` then trains the file's loss plus ``mu/2 ||w - w_received||^2``
(``personalize.proximal``: the term's gradient is added before the file's optimizer steps).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

from ...spec import io as spec_io
from ..errors import PipelineError
from .federated import updatable_parameters, with_parameters

__all__ = ["STRATEGIES", "federate", "make_strategy", "recorded_strategy"]

logger = logging.getLogger(__name__)

STRATEGIES = ("fedavg", "fedprox", "fedadam")


def _flwr():
    try:
        import flwr
    except ImportError:
        raise PipelineError("federated learning runs on Flower, which is not installed",
                            hint="pip install \"pippin[federated]\"") from None
    return flwr


def _weighted(metrics: list) -> dict:
    """Example-weighted mean of each metric over clients (``[(n_examples, {name: value})]``)."""
    total = sum(n for n, _ in metrics)
    names = sorted({k for _, m in metrics for k in m})
    return {k: sum(n * float(m.get(k, 0.0)) for n, m in metrics) / total for k in names} if total else {}


def make_strategy(name: str, initial: list, *, n_clients: int, fraction: float = 1.0, dp_clip: float | None = None,
                  dp_noise: float | None = None, dp_side: str = "client", proximal_mu: float = 0.1,
                  server_lr: float = 0.1, on_evaluate: Callable | None = None):
    """One of Flower's strategies over ``initial`` parameters (optionally with one of Flower's DP wrappers).

    Parameters
    ----------
    name : {"fedavg", "fedprox", "fedadam"}
    initial : list of np.ndarray
        The start model's updatable parameters.
    n_clients : int
        Clients taking part (the sampling minimum is 1, so a small federation still runs).
    fraction : float in (0, 1]
        Share of the clients sampled to fit each round (all clients evaluate).
    dp_clip, dp_noise : float, optional
        Both or neither: L2 clipping norm of each update, and the noise multiplier.
    dp_side : {"client", "server"}
        Where updates are clipped: on the clients (Flower's ``DifferentialPrivacyClientSideFixedClipping``;
        the server never sees an unclipped update) or on the server
        (``DifferentialPrivacyServerSideFixedClipping``). The noise is added on the server either way.
    on_evaluate : callable, optional
        Flower's server-side ``evaluate_fn(server_round, parameters, config)``.
    """
    flwr = _flwr()
    from flwr.common import ndarrays_to_parameters
    from flwr.server import strategy as fs

    if name not in STRATEGIES:
        raise PipelineError(f"strategy={name!r}, expected one of {list(STRATEGIES)}")
    if not 0 < fraction <= 1:
        raise PipelineError(f"fraction={fraction!r}, expected a share in (0, 1]")
    if (dp_clip is None) != (dp_noise is None):
        raise PipelineError("differential privacy needs both the clipping norm and the noise multiplier",
                            hint="give --dp-clip C --dp-noise Z together")
    n_fit = max(1, int(math.floor(n_clients * fraction)))
    common = dict(fraction_fit=fraction, fraction_evaluate=1.0, min_fit_clients=n_fit, min_evaluate_clients=1,
                  min_available_clients=n_clients, initial_parameters=ndarrays_to_parameters(initial),
                  evaluate_fn=on_evaluate, fit_metrics_aggregation_fn=_weighted,
                  evaluate_metrics_aggregation_fn=_weighted, accept_failures=True)
    if name == "fedavg":
        strategy = fs.FedAvg(**common)
    elif name == "fedprox":
        strategy = fs.FedProx(proximal_mu=proximal_mu, **common)
    else:
        strategy = fs.FedAdam(eta=server_lr, eta_l=server_lr, tau=1e-3, **common)
    if dp_clip is not None:
        if dp_clip <= 0 or dp_noise < 0:
            raise PipelineError(f"dp_clip={dp_clip!r} must be > 0 and dp_noise={dp_noise!r} >= 0")
        if dp_side not in ("client", "server"):
            raise PipelineError(f"dp_side={dp_side!r}, expected 'client' or 'server'")
        wrapper = (fs.DifferentialPrivacyClientSideFixedClipping if dp_side == "client"
                   else fs.DifferentialPrivacyServerSideFixedClipping)
        strategy = wrapper(strategy, noise_multiplier=float(dp_noise), clipping_norm=float(dp_clip),
                           num_sampled_clients=n_fit)
    logger.debug("flwr %s strategy %s", flwr.__version__, strategy)
    return strategy


def _proxies(clients: dict):
    """Flower ``ClientProxy`` objects that call the in-process clients directly."""
    from flwr.common import DisconnectRes
    from flwr.server.client_proxy import ClientProxy

    class InProcessProxy(ClientProxy):
        def __init__(self, cid, client):
            super().__init__(cid)
            self._client = client.to_client()

        def get_properties(self, ins, timeout, group_id):
            return self._client.get_properties(ins)

        def get_parameters(self, ins, timeout, group_id):
            return self._client.get_parameters(ins)

        def fit(self, ins, timeout, group_id):
            return self._client.fit(ins)

        def evaluate(self, ins, timeout, group_id):
            return self._client.evaluate(ins)

        def reconnect(self, ins, timeout, group_id):
            return DisconnectRes(reason="")

    return [InProcessProxy(str(cid), client) for cid, client in clients.items()]


def recorded_strategy(start, n_clients: int, *, out, strategy: str = "fedavg", fraction: float = 1.0,
                      dp_clip: float | None = None, dp_noise: float | None = None, dp_side: str = "client",
                      on_round: Callable[[dict], None] | None = None, **strategy_options):
    """(Flower strategy, history): ``make_strategy``'s, writing ``out`` after every round and recording each round.

    Shared by ``federate`` (this module's in-process server) and
    ``federated_sim.simulate`` (Flower's simulation engine). ``history`` fills as the
    rounds run (see ``federate``'s Returns).
    """
    _flwr()
    from flwr.server.strategy import Strategy

    out = Path(out)
    initial = updatable_parameters(start)
    history: list[dict] = []

    def write(server_round, arrays, config):  # Flower's evaluate_fn: round 0 (the start), then after each round
        spec_io.save(with_parameters(start, arrays), out)
        return None

    inner = make_strategy(strategy, initial, n_clients=n_clients, fraction=fraction, dp_clip=dp_clip,
                          dp_noise=dp_noise, dp_side=dp_side, on_evaluate=write, **strategy_options)

    class Recorded(Strategy):
        """Flower's strategy as is, with each round's outcome recorded."""

        def initialize_parameters(self, client_manager):
            return inner.initialize_parameters(client_manager)

        def configure_fit(self, server_round, parameters, client_manager):
            return inner.configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round, results, failures):
            for failure in failures:
                logger.warning("round %d: a client failed: %s", server_round,
                               failure[1].status.message if isinstance(failure, tuple) else failure)
            results = sorted(results, key=lambda pair: pair[0].cid)  # arrival order must not change the sums
            params, metrics = inner.aggregate_fit(server_round, results, failures)
            history.append({"round": server_round, "clients": len(results), "failures": len(failures),
                            "train_loss": metrics.get("loss")})
            return params, metrics

        def configure_evaluate(self, server_round, parameters, client_manager):
            return inner.configure_evaluate(server_round, parameters, client_manager)

        def aggregate_evaluate(self, server_round, results, failures):
            results = sorted((r for r in results if r[1].num_examples > 0), key=lambda pair: pair[0].cid)
            loss, metrics = inner.aggregate_evaluate(server_round, results, failures) if results else (None, {})
            record = history[-1] if history and history[-1]["round"] == server_round else {"round": server_round}
            record.update(loss=loss, accuracy=metrics.get("accuracy"))
            if on_round is not None:
                on_round(dict(record))
            return loss, metrics

        def evaluate(self, server_round, parameters):
            return inner.evaluate(server_round, parameters)

    return Recorded(), history


def federate(start, clients: dict, *, rounds: int, out, strategy: str = "fedavg", fraction: float = 1.0,
             dp_clip: float | None = None, dp_noise: float | None = None, dp_side: str = "client", seed: int = 0,
             on_round: Callable[[dict], None] | None = None, **strategy_options) -> list[dict]:
    """Run ``rounds`` federated rounds on Flower and write the shared model to ``out`` after each.

    Parameters
    ----------
    start : pippin.spec.Model
        The model every client starts from (updatable weights as initialised).
    clients : dict of client id to CoreMLClient
    rounds : int > 0
    out : path-like
        Rewritten atomically after every round.
    strategy, fraction, dp_clip, dp_noise, dp_side, **strategy_options
        See ``make_strategy``.
    seed : int
        Seeds Flower's client sampling (Python's ``random``, which it uses).
    on_round : callable, optional
        Called after each round with the round's record (see Returns).

    Returns
    -------
    history : list of dict
        One per round: ``round``, ``loss`` and ``accuracy`` (example-weighted over the
        clients' held-out data), ``clients`` (fits that returned), ``failures``, ``train_loss``.
    """
    _flwr()
    import random

    from flwr.server import Server
    from flwr.server.client_manager import SimpleClientManager

    if rounds < 1:
        raise PipelineError(f"rounds={rounds!r}, expected at least 1")
    if not clients:
        raise PipelineError("no clients to federate")
    recorded, history = recorded_strategy(start, len(clients), out=out, strategy=strategy, fraction=fraction,
                                          dp_clip=dp_clip, dp_noise=dp_noise, dp_side=dp_side, on_round=on_round,
                                          **strategy_options)

    manager = SimpleClientManager()
    for proxy in _proxies(clients):
        manager.register(proxy)
    state = random.getstate()
    random.seed(seed)  # Flower samples clients with Python's random; the caller's state is restored below
    try:
        Server(client_manager=manager, strategy=recorded).fit(num_rounds=int(rounds), timeout=None)
    finally:
        random.setstate(state)
    return history
