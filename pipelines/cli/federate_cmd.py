"""``pippin federate MODEL DATA --client-col COL --rounds N -o OUT``: federated rounds on Flower, simulated locally.

One virtual client per value of COL holds its rows of DATA (split into local training
and held-out data), trains the model's updatable weights with the file's own update
parameters, and sends back only those weights; Flower's server aggregates them
(``--strategy fedavg|fedprox|fedadam``, optional differential privacy with
``--dp-clip C --dp-noise Z``) and OUT is rewritten after every round: a valid model
that differs from MODEL only in its updatable weights. DATA is a CSV/TSV/Parquet
table of the model's training inputs, or, for a sound classifier, a table with
``path`` and ``label`` columns of audio files. A pipeline's frozen stages (a sound
model's backbone) run once per client; only the updatable last stage is federated.
The clients run in this process by default (Flower's server loop over in-process
client proxies); ``--engine simulation`` runs Flower's simulation engine instead
(``ServerApp``/``ClientApp``, clients in Ray workers), and ``--secure-aggregation``
adds Flower's SecAgg+ on it. Needs ``pip install "pippin[federated]"``
(``"pippin[federated-simulation]"`` for the simulation engine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...spec import io as spec_io
from ..errors import PipelineError
from ..personalize.federated import CoreMLClient, client_data, run_prefix, split_head
from ..personalize.federated_server import STRATEGIES, federate
from ..runtime.model import load
from .exit_codes import HELP_EPILOG
from .output import Result, info
from .training_data import _read_table, load_training_data


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "federate", parents=parents, help="federated rounds over clients (Flower), simulated locally",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="an updatable .mlmodel file (the start of the rounds)")
    parser.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet table (or a path,label audio table)")
    parser.add_argument("--client-col", required=True, metavar="COL", help="the column naming each row's client")
    parser.add_argument("--rounds", type=int, required=True, metavar="N", help="federated rounds")
    parser.add_argument("--fraction", type=float, default=1.0, metavar="F",
                        help="share of the clients that fit each round (default: 1.0)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="fedavg", help="Flower strategy (default: fedavg)")
    parser.add_argument("--proximal-mu", type=float, default=0.1, metavar="MU",
                        help="fedprox: weight of the proximal term mu/2 ||w - w_global||^2 (default: 0.1)")
    parser.add_argument("--dp-clip", type=float, default=None, metavar="C", help="clip each update to L2 norm C")
    parser.add_argument("--dp-noise", type=float, default=None, metavar="Z",
                        help="Gaussian noise multiplier (std Z*C/clients) on the aggregate")
    parser.add_argument("--dp-side", choices=("client", "server"), default="client",
                        help="where updates are clipped (default: client; the noise is added on the server)")
    parser.add_argument("--engine", choices=("inprocess", "simulation"), default=None,
                        help="inprocess (default): Flower's server loop with the clients in this process; simulation: "
                             "Flower's simulation engine (ServerApp/ClientApp on Ray; pippin[federated-simulation])")
    parser.add_argument("--secure-aggregation", action="store_true",
                        help="Flower's SecAgg+: the server learns only the sum of the updates (needs --engine "
                             "simulation, which it implies, and 3 or more clients per round)")
    parser.add_argument("--epochs", type=int, default=None, help="local epochs per round (default: the model's)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of each client's rows (audio: files) held out for evaluation (default: 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the held-out split and client sampling")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the model written after every round")
    parser.set_defaults(handler=run)
    return parser


def _audio_rows(path: Path, model, column: str):
    """(training data, client per window, file per window) from a ``path,label,COL`` table of audio files."""
    from ...audio.inference import audio_input, window_align
    from ...audio.io import read_windows
    from .update_cmd import label_input

    table = _read_table(path)
    for name in ("path", "label", column):
        if name not in table.columns:
            raise PipelineError(f"no column {name!r}; the table has {[str(c) for c in table.columns]}",
                                where=str(path))
    audio, window, rate = audio_input(model)
    align = window_align(model)
    windows, labels, clients, files = [], [], [], []
    for i, (file, label, client) in enumerate(zip(table["path"], table["label"], table[column])):
        file = Path(str(file)) if Path(str(file)).is_absolute() else path.parent / str(file)
        w = read_windows(file, overlap=0.5, warn_short=False, sample_rate=rate, window=window, align=align)[1]
        windows.append(w)
        labels += [str(label)] * len(w)
        clients += [str(client)] * len(w)
        files += [i] * len(w)
    data = {audio: np.concatenate(windows), label_input(model.spec, exclude=audio): np.array(labels, dtype=object)}
    return data, np.array(clients, dtype=object), np.array(files)


def _table_rows(path: Path, model, column: str):
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if column not in archive.files:
                raise PipelineError(f"no array {column!r}; the file has {sorted(archive.files)}", where=str(path))
            groups = archive[column]
    else:
        table = _read_table(path)
        if column not in table.columns:
            raise PipelineError(f"no column {column!r}; the table has {[str(c) for c in table.columns]}",
                                where=str(path))
        groups = table[column].astype(str).to_numpy(dtype=object)
    return load_training_data(path, model.spec), groups, None


def _is_audio_table(path: Path, model) -> bool:
    from .update_cmd import is_audio_data

    return path.is_file() and is_audio_data(path, model)


def run(args):
    spec_io.check_output_path(args.output)
    if args.rounds < 1:
        raise PipelineError(f"--rounds {args.rounds}: expected at least 1")
    engine = args.engine or ("simulation" if args.secure_aggregation else "inprocess")
    if args.secure_aggregation and engine != "simulation":
        raise PipelineError("--secure-aggregation runs on Flower's simulation engine",
                            hint="drop --engine inprocess, or use --engine simulation")
    if args.proximal_mu < 0:
        raise PipelineError(f"--proximal-mu {args.proximal_mu}: expected >= 0")
    if not 0 <= args.test_fraction < 1:
        raise PipelineError(f"--test-fraction {args.test_fraction}: expected a share in [0, 1)")
    model = load(args.model)
    if not model.is_updatable:
        raise PipelineError("the model is not updatable (isUpdatable is false)", where=args.model)
    path = Path(args.data)
    if not path.exists():
        raise PipelineError("no such file", where=args.data)
    reader = _audio_rows if _is_audio_table(path, model) else _table_rows
    data, groups, units = reader(path, model, args.client_col)
    prefix, head = split_head(model.spec)
    if prefix:
        info(f"running the {len(prefix)} frozen stage{'s' if len(prefix) > 1 else ''} once on "
             f"{len(groups)} examples")
        head_names = {f.name for f in head.description.input} | {f.name for f in head.description.trainingInput}
        label = head.description.predictedFeatureName
        data = {k: v for k, v in run_prefix(prefix, data).items() if k in head_names or k == label}
    parts = client_data(data, groups, test_fraction=args.test_fraction, seed=args.seed, units=units)
    clients = {str(k): CoreMLClient(head, train, test, epochs=args.epochs) for k, (train, test) in parts.items()}
    info(f"{len(clients)} clients ({args.client_col}), {args.rounds} rounds, strategy {args.strategy}, "
         f"engine {engine}" + (" with secure aggregation (SecAgg+)" if args.secure_aggregation else "")
         + (f", DP clip {args.dp_clip} ({args.dp_side} side) noise {args.dp_noise}" if args.dp_clip is not None else ""))

    def line(record):
        loss, acc = record.get("loss"), record.get("accuracy")
        info(f"round {record['round']}: loss " + ("-" if loss is None else f"{loss:.4f}")
             + ", accuracy " + ("-" if acc is None else f"{acc:.4f}")
             + f", clients {record.get('clients', 0)}/{len(clients)}"
             + (f" ({record['failures']} failed)" if record.get("failures") else ""))

    common = dict(rounds=args.rounds, out=args.output, strategy=args.strategy, fraction=args.fraction,
                  dp_clip=args.dp_clip, dp_noise=args.dp_noise, dp_side=args.dp_side, seed=args.seed, on_round=line,
                  **({"proximal_mu": args.proximal_mu} if args.strategy == "fedprox" else {}))
    if engine == "simulation":
        from ..personalize.federated_sim import simulate

        history = simulate(model.spec, head, parts, epochs=args.epochs, secure_aggregation=args.secure_aggregation,
                           **common)
    else:
        history = federate(model.spec, clients, **common)
    last = history[-1] if history else {}
    payload = {"model": str(args.output), "strategy": args.strategy, "n_clients": len(clients),
               "clients": sorted(clients), "rounds": history, "loss": last.get("loss"),
               "accuracy": last.get("accuracy"), "proximal_mu": args.proximal_mu if args.strategy == "fedprox" else None,
               "engine": engine, "secure_aggregation": bool(args.secure_aggregation),
               "dp": None if args.dp_clip is None else {"clip": args.dp_clip, "noise": args.dp_noise,
                                                         "side": args.dp_side}}
    text = (f"{len(history)} rounds over {len(clients)} clients; held-out accuracy "
            + ("-" if last.get("accuracy") is None else f"{last['accuracy']:.4f}") + f"\nwrote {args.output}")
    return Result(payload, text)
