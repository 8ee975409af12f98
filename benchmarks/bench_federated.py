"""Federated learning on FSDD: one Flower client per speaker, against centralized and local-only training.

The start model is the exported sound classifier ``speech`` backbone (frozen) ->
head (updatable dense layer, freshly initialised: ``pippin.audio.head.build_head``).
Each speaker is a client: takes 5 .. 5+N-1 (``--takes N``) are its training data; its
held-out data are every other take (``--test-takes rest``, the default: 450 clips per
speaker at N=5) or takes 0-4 (``--test-takes 0-4``: 50 clips). Every clip is embedded
once with the backbone; only the head is federated (its updatable weights are the
whole model's). All arms train the same head with the same Core ML update semantics
(the head's Adam, mini-batch 32) for the same number of passes over each example
(``--rounds`` x ``--local-epochs``), and are scored on the same held-out clips:

- centralized: ``model.update`` on the union of the six speakers' training takes; and the
  same again from another initialisation (seed + 100: how much one centralized run's
  per-speaker accuracy moves by chance, the noise floor of the per-speaker comparison);
- local-only: each speaker's ``model.update`` on its own takes, scored on its own held-out takes;
- federated: ``pippin.pipelines.personalize.federated_server.federate`` on Flower (FedAvg,
  and ``--strategies``: FedProx with ``--proximal-mu``, FedAdam), per-round curve; the same with
  Flower's DP wrapper (``--dp`` pairs of clip:noise) and with one client crashing in every fit;
- engines (``--engines``): FedAvg again in this process, on Flower's simulation engine (Ray) and
  with SecAgg+ on it: time, peak memory of the process tree, accuracy, weights against in-process.

    python benchmarks/bench_federated.py [--fsdd DIR] [--rounds 50] [--local-epochs 10] [--json]
        [--strategies fedavg,fedprox,fedadam] [--dp 1.0:0.1,1.0:0.5] [--takes 5] [--test-takes rest]
        [--seeds 0,1,2,3,4] [--engines inprocess,simulation,secagg] [--cache FILE.npz]

Needs Flower (``pippin[federated]``). Prints a table per seed and a summary over the
seeds, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pippin.audio.backbones import get_backbone
from pippin.audio.defaults import DEFAULTS
from pippin.audio.embeddings import embed_files
from pippin.audio.head import EMBEDDING_INPUT, build_head, export_backbone_pipeline
from pippin.audio.network import LABEL_OUTPUT
from pippin.pipelines import load
from pippin.pipelines.personalize.federated import CoreMLClient, score, split_head, updatable_parameters
from pippin.pipelines.personalize.federated_server import federate
from pippin.spec.validate import validate

NAME = re.compile(r"(\d)_(\w+?)_(\d+)\.wav$")


def embedded(fsdd: Path, cache: Path | None):
    """(embeddings [shape=(n, 96, 10, 1)], digits, speakers, takes), embedding each clip once (cached)."""
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return z["patches"], z["digits"], z["speakers"], z["takes"]
    root = fsdd / "recordings" if (fsdd / "recordings").is_dir() else fsdd
    paths = sorted(p for p in root.iterdir() if NAME.match(p.name))
    feats = embed_files(paths, get_backbone("speech"), progress=False)
    meta = np.array([NAME.match(paths[i].name).groups() for i in feats.clip_index])
    out = feats.patches, meta[:, 0], meta[:, 1], meta[:, 2].astype(int)
    if cache is not None:
        np.savez(cache, patches=out[0], digits=out[1], speakers=out[2], takes=out[3])
    return out


def start_model(epochs: int, seed: int):
    backbone = get_backbone("speech")
    s = DEFAULTS["speech"]
    head = build_head([str(d) for d in range(10)], embedding_dim=backbone.embedding_dim, n_steps=backbone.n_steps,
                      hidden=0, seed=seed, learning_rate=s["learning_rate"], batch_size=s["batch_size"],
                      epochs=epochs)
    return export_backbone_pipeline(head, backbone, metadata={"align": backbone.align})  # as the trainer writes


class TreeRSS:
    """Peak resident memory (MB) of this process and all its descendants (Ray's), sampled every 0.2 s."""

    def __enter__(self):
        import threading

        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb())
            self._stop.wait(0.2)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def tree_rss_mb() -> float:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {os.getpid()}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
        tree |= new
        grew = bool(new)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def per_client(model, tests):
    return {k: score(model, t)[1] for k, t in tests.items()}


def split(x, labels, speakers, takes, n_takes: int, test_takes: str):
    """Per speaker (train, test) dicts: train takes 5 .. 5+n_takes-1, test every other take or a range "a-b"."""
    if test_takes == "rest":
        held = lambda t: (t < 5) | (t >= 5 + n_takes)  # noqa: E731
    else:
        lo, hi = (int(v) for v in test_takes.split("-"))
        held = lambda t: (t >= lo) & (t <= hi)  # noqa: E731
    trains, tests = {}, {}
    for s in sorted(set(speakers.tolist())):
        tr, te = (speakers == s) & (takes >= 5) & (takes < 5 + n_takes), (speakers == s) & held(takes)
        if np.any(tr & te):
            raise SystemExit(f"--test-takes {test_takes} overlaps the training takes 5-{4 + n_takes}")
        trains[s] = {EMBEDDING_INPUT: x[tr], LABEL_OUTPUT: labels[tr]}
        tests[s] = {EMBEDDING_INPUT: x[te], LABEL_OUTPUT: labels[te]}
    return trains, tests


def one_seed(args, seed, trains, tests):
    """Every arm for one seed (head initialisation, shuffling, Flower's sampling)."""
    full = start_model(args.local_epochs, seed)
    _, head = split_head(full)
    total_epochs = args.rounds * args.local_epochs
    res = {"seed": seed}
    t = time.perf_counter()
    union = {k: np.concatenate([v[k] for v in trains.values()]) for k in (EMBEDDING_INPUT, LABEL_OUTPUT)}
    res["centralized"] = per_client(load(head).update(union, epochs=total_epochs), tests)
    res["centralized_seconds"] = round(time.perf_counter() - t, 1)
    _, other = split_head(start_model(args.local_epochs, seed + 100))
    res["centralized_other_init"] = per_client(load(other).update(union, epochs=total_epochs), tests)
    t = time.perf_counter()
    res["local_only"] = {k: score(load(head).update(trains[k], epochs=total_epochs), tests[k])[1] for k in trains}
    res["local_only_seconds"] = round(time.perf_counter() - t, 1)

    def run(strategy="fedavg", crash=None, **kw):
        class Crashing(CoreMLClient):
            def fit(self, parameters, config):
                raise RuntimeError("device went away mid-fit")

        clients = {k: (Crashing if k == crash else CoreMLClient)(head, trains[k], tests[k]) for k in trains}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "federated.mlmodel"
            t = time.perf_counter()
            history = federate(full, clients, rounds=args.rounds, out=out, strategy=strategy, seed=seed, **kw)
            seconds = time.perf_counter() - t
            written = load(str(out))
            problems = [str(x) for x in validate(written.spec)]
            _, final_head = split_head(written.spec)
            accs = per_client(load(final_head), tests)
        return {"per_client": accs, "mean": float(np.mean(list(accs.values()))),
                "curve": [{k: h.get(k) for k in ("round", "loss", "accuracy", "clients", "failures")}
                          for h in history], "seconds": round(seconds, 1), "validate_problems": problems}

    res["federated"] = {s: run(s, **({"proximal_mu": args.proximal_mu} if s == "fedprox" else {}))
                        for s in args.strategies.split(",") if s}
    res["engines"] = {}
    for engine in [e for e in args.engines.split(",") if e]:  # FedAvg on each engine, interleaved
        with tempfile.TemporaryDirectory() as tmp, TreeRSS() as rss:
            out = Path(tmp) / "federated.mlmodel"
            t = time.perf_counter()
            if engine == "inprocess":
                federate(full, {k: CoreMLClient(head, trains[k], tests[k]) for k in trains}, rounds=args.rounds,
                         out=out, seed=seed)
            else:
                from pippin.pipelines.personalize.federated_sim import simulate

                simulate(full, head, {k: (trains[k], tests[k]) for k in trains}, rounds=args.rounds, out=out,
                         seed=seed, secure_aggregation=engine == "secagg")
            seconds = time.perf_counter() - t
            _, final_head = split_head(load(str(out)).spec)
            accs = per_client(load(final_head), tests)
            params = updatable_parameters(final_head)
        res["engines"][engine] = {"per_client": accs, "mean": float(np.mean(list(accs.values()))),
                                  "seconds": round(seconds, 1), "peak_rss_mb": round(rss.peak),
                                  "max_abs_weight": float(max(np.abs(p).max() for p in params)),
                                  "params": params}
    base = res["engines"].get("inprocess")
    for e in res["engines"].values():  # how far each engine's weights are from the in-process ones
        e["max_weight_diff_vs_inprocess"] = (None if base is None else float(max(
            np.abs(a - b).max() for a, b in zip(e["params"], base["params"]))))
    for e in res["engines"].values():
        del e["params"]
    res["dp"] = {}
    for pair in [q for q in args.dp.split(",") if q]:
        clip, noise = (float(v) for v in pair.split(":"))
        res["dp"][pair] = run(dp_clip=clip, dp_noise=noise, dp_side=args.dp_side)
    if args.crash:
        res["crash"] = run(crash=sorted(trains)[0])
    for arm in ("centralized", "centralized_other_init", "local_only"):
        res[arm + "_mean"] = float(np.mean(list(res[arm].values())))
    fed = res["federated"].get("fedavg")
    if fed:
        res["checks"] = checks(fed["per_client"], res["centralized"], res["local_only_mean"])
        res["noise_floor"] = checks(res["centralized_other_init"], res["centralized"], res["local_only_mean"])
    return res


def checks(per_client: dict, central: dict, local_mean: float) -> dict:
    """The issue's two conditions for one arm's per-speaker accuracies against centralized and local-only."""
    gaps = {k: per_client[k] - central[k] for k in central}
    return {"max_gap_to_centralized": float(min(gaps.values())), "worst_client": min(gaps, key=gaps.get),
            "every_client_within_2_points": all(g >= -0.02 - 1e-9 for g in gaps.values()),
            "above_local_only_on_average": float(np.mean(list(per_client.values()))) > local_mean}


def summary(runs: list) -> dict:
    """Over the seeds: means, how many seeds meet each condition, and the conditions on seed-mean accuracies."""
    arms = {"centralized": [r["centralized"] for r in runs], "local_only": [r["local_only"] for r in runs],
            "centralized_other_init": [r["centralized_other_init"] for r in runs]}
    for name in runs[0]["federated"]:
        arms[name] = [r["federated"][name]["per_client"] for r in runs]
    for pair in runs[0]["dp"]:
        arms["dp " + pair] = [r["dp"][pair]["per_client"] for r in runs]
    if "crash" in runs[0]:
        arms["crash"] = [r["crash"]["per_client"] for r in runs]
    clients = sorted(runs[0]["centralized"])
    seed_mean = {a: {k: float(np.mean([v[k] for v in vals])) for k in clients} for a, vals in arms.items()}
    out = {"seeds": [r["seed"] for r in runs],
           "mean": {a: float(np.mean(list(m.values()))) for a, m in seed_mean.items()},
           "mean_range": {a: [float(min(np.mean(list(v.values())) for v in vals)),
                              float(max(np.mean(list(v.values())) for v in vals))] for a, vals in arms.items()},
           "per_client_seed_mean": seed_mean}
    if "fedavg" in arms:
        local = out["mean"]["local_only"]
        out["seeds_meeting"] = {
            arm: {"every_client_within_2_points": sum(checks(v, c, 0)["every_client_within_2_points"]
                                                      for v, c in zip(arms[arm], arms["centralized"])),
                  "above_local_only_on_average": sum(r["checks"]["above_local_only_on_average"] for r in runs)
                  if arm == "fedavg" else None,
                  "max_gap": float(min(checks(v, c, 0)["max_gap_to_centralized"]
                                       for v, c in zip(arms[arm], arms["centralized"])))}
            for arm in ("fedavg", "centralized_other_init") + tuple(a for a in ("fedprox", "fedadam") if a in arms)}
        out["seed_mean_checks"] = {arm: checks(seed_mean[arm], seed_mean["centralized"], local)
                                   for arm in ("fedavg", "centralized_other_init")}
    if runs[0].get("engines"):
        out["engines"] = {e: {"mean": float(np.mean([r["engines"][e]["mean"] for r in runs])),
                              "seconds": [r["engines"][e]["seconds"] for r in runs],
                              "peak_rss_mb": max(r["engines"][e]["peak_rss_mb"] for r in runs),
                              "max_abs_weight": max(r["engines"][e]["max_abs_weight"] for r in runs),
                              "max_weight_diff_vs_inprocess": max((r["engines"][e]["max_weight_diff_vs_inprocess"] or 0)
                                                                  for r in runs)}
                          for e in runs[0]["engines"]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fsdd", default=os.environ.get("PIPPIN_FSDD", "/work/shared/datasets/fsdd"))
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--local-epochs", type=int, default=10)
    p.add_argument("--strategies", default="fedavg,fedprox,fedadam")
    p.add_argument("--proximal-mu", type=float, default=0.1, help="FedProx's mu")
    p.add_argument("--dp", default="1.0:0.1,1.0:0.5,1.0:1.0", help="clip:noise pairs ('' for none)")
    p.add_argument("--dp-side", default="client", choices=("client", "server"))
    p.add_argument("--engines", default="", help="FedAvg again on engines: inprocess,simulation,secagg "
                   "(Flower's simulation engine on Ray, plain and with SecAgg+; needs pippin[federated-simulation])")
    p.add_argument("--no-crash", dest="crash", action="store_false", help="skip the crashing-client run")
    p.add_argument("--takes", type=int, default=5, help="training takes per digit and speaker (5 .. 5+N-1)")
    p.add_argument("--test-takes", default="rest", help="held-out takes: 'rest' (every take not trained on) or 'A-B'")
    p.add_argument("--seeds", default="0")
    p.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds N)")
    p.add_argument("--cache", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import flwr

    seeds = [args.seed] if args.seed is not None else [int(v) for v in args.seeds.split(",")]
    t0 = time.perf_counter()
    x, digits, speakers, takes = embedded(Path(args.fsdd), Path(args.cache) if args.cache else None)
    t_embed = time.perf_counter() - t0
    trains, tests = split(x, digits.astype(object), speakers, takes, args.takes, args.test_takes)
    res = {"clients": sorted(trains), "n_train": {k: len(v[LABEL_OUTPUT]) for k, v in trains.items()},
           "n_test": {k: len(v[LABEL_OUTPUT]) for k, v in tests.items()}, "rounds": args.rounds,
           "local_epochs": args.local_epochs, "takes": args.takes, "test_takes": args.test_takes,
           "proximal_mu": args.proximal_mu, "embed_seconds": round(t_embed, 1), "load_before": os.getloadavg()}
    runs = []
    for seed in seeds:
        runs.append(one_seed(args, seed, trains, tests))
        if not args.json:
            table(args, runs[-1], trains)
    res["runs"] = runs
    res["summary"] = summary(runs)
    res["machine"] = {"python": platform.python_version(), "flwr": flwr.__version__, "numpy": np.__version__,
                      "cpus": os.cpu_count(), "load": os.getloadavg()}
    if args.json:
        print(json.dumps(res, indent=1, default=float))
    else:
        print(json.dumps({k: v for k, v in res["summary"].items() if k != "per_client_seed_mean"}, indent=1))
    return 0


def table(args, res, trains):
    import flwr

    print(f"seed {res['seed']}: FSDD, {len(trains)} clients, {args.rounds} rounds x {args.local_epochs} local epochs "
          f"(flwr {flwr.__version__}, load {os.getloadavg()[0]:.1f})")
    others = [("crash", res["crash"])] if "crash" in res else []
    print(f"{'client':10s} {'central':>8s} {'central2':>8s} {'local':>8s} "
          + " ".join(f"{s:>8s}" for s in res["federated"])
          + " " + " ".join(f"dp{q:>7s}" for q in res["dp"]) + "".join(f" {n:>8s}" for n, _ in others))
    for k in trains:
        print(f"{k:10s} {res['centralized'][k]:8.3f} {res['centralized_other_init'][k]:8.3f} "
              f"{res['local_only'][k]:8.3f} "
              + " ".join(f"{r['per_client'][k]:8.3f}" for r in res["federated"].values()) + " "
              + " ".join(f"{r['per_client'][k]:9.3f}" for r in res["dp"].values())
              + "".join(f" {r['per_client'][k]:8.3f}" for _, r in others))
    for name, r in list(res["federated"].items()) + others:
        print(f"{name} curve: " + ", ".join(f"r{h['round']} {h['accuracy']:.3f}" for h in r["curve"]))
    print(json.dumps(res.get("checks", {})), json.dumps({"noise_floor": res.get("noise_floor")}))


if __name__ == "__main__":
    sys.exit(main())
