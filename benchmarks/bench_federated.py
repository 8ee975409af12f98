"""Federated learning on FSDD: one Flower client per speaker, against centralized and local-only training.

The start model is the exported sound classifier ``speech`` backbone (frozen) ->
head (updatable dense layer, freshly initialised: ``pippin.audio.head.build_head``).
Each speaker is a client: takes 5-49 are its training data, takes 0-4 its held-out
data. Every clip is embedded once with the backbone; only the head is federated
(its updatable weights are the whole model's). All three arms train the same head
with the same Core ML update semantics (the head's Adam, mini-batch 32) for the same
number of passes over each example (``--rounds`` x ``--local-epochs``):

- centralized: ``model.update`` on the union of the six speakers' training takes;
- local-only: each speaker's ``model.update`` on its own takes, scored on its own held-out takes;
- federated: ``pippin.pipelines.personalize.federated_server.federate`` on Flower (FedAvg,
  and ``--strategies``), per-round curve; the same with Flower's DP wrapper
  (``--dp`` pairs of clip:noise) and with one client crashing in every fit.

    python benchmarks/bench_federated.py [--fsdd DIR] [--rounds 10] [--local-epochs 2] [--json]
        [--strategies fedavg,fedadam] [--dp 1.0:0.1,1.0:0.5] [--takes 45] [--seed 0] [--cache FILE.npz]

Needs Flower (``pippin[federated]``). Prints a table, or one JSON object with ``--json``.
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
from pippin.pipelines.personalize.federated import CoreMLClient, score, split_head
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


def per_client(model, tests):
    return {k: score(model, t)[1] for k, t in tests.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fsdd", default=os.environ.get("PIPPIN_FSDD", "/work/shared/datasets/fsdd"))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--local-epochs", type=int, default=2)
    p.add_argument("--strategies", default="fedavg")
    p.add_argument("--dp", default="1.0:0.1,1.0:0.5,1.0:1.0", help="clip:noise pairs ('' for none)")
    p.add_argument("--dp-side", default="client", choices=("client", "server"))
    p.add_argument("--takes", type=int, default=45, help="training takes per digit and speaker (5 .. 5+N-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import flwr

    t0 = time.perf_counter()
    x, digits, speakers, takes = embedded(Path(args.fsdd), Path(args.cache) if args.cache else None)
    t_embed = time.perf_counter() - t0
    full = start_model(args.local_epochs, args.seed)
    _, head = split_head(full)
    labels = digits.astype(object)
    trains, tests = {}, {}
    for s in sorted(set(speakers.tolist())):
        tr, te = (speakers == s) & (takes >= 5) & (takes < 5 + args.takes), (speakers == s) & (takes < 5)
        trains[s] = {EMBEDDING_INPUT: x[tr], LABEL_OUTPUT: labels[tr]}
        tests[s] = {EMBEDDING_INPUT: x[te], LABEL_OUTPUT: labels[te]}
    total_epochs = args.rounds * args.local_epochs
    res = {"clients": sorted(trains), "n_train": {k: len(v[LABEL_OUTPUT]) for k, v in trains.items()},
           "rounds": args.rounds, "local_epochs": args.local_epochs, "seed": args.seed, "takes": args.takes, "embed_seconds": round(t_embed, 1)}
    t = time.perf_counter()
    union = {k: np.concatenate([v[k] for v in trains.values()]) for k in (EMBEDDING_INPUT, LABEL_OUTPUT)}
    central = load(head).update(union, epochs=total_epochs)
    res["centralized"] = per_client(central, tests)
    res["centralized_seconds"] = round(time.perf_counter() - t, 1)
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
            history = federate(full, clients, rounds=args.rounds, out=out, strategy=strategy, seed=args.seed, **kw)
            seconds = time.perf_counter() - t
            written = load(str(out))
            problems = [str(x) for x in validate(written.spec)]
            _, final_head = split_head(written.spec)
            accs = per_client(load(final_head), tests)
        return {"per_client": accs, "mean": float(np.mean(list(accs.values()))),
                "curve": [{k: h.get(k) for k in ("round", "loss", "accuracy", "clients", "failures")}
                          for h in history], "seconds": round(seconds, 1), "validate_problems": problems}

    res["federated"] = {s: run(s) for s in args.strategies.split(",") if s}
    res["dp"] = {}
    for pair in [q for q in args.dp.split(",") if q]:
        clip, noise = (float(v) for v in pair.split(":"))
        res["dp"][pair] = run(dp_clip=clip, dp_noise=noise, dp_side=args.dp_side)
    res["crash"] = run(crash=sorted(trains)[0])
    fed = res["federated"].get("fedavg")
    for arm in ("centralized", "local_only"):
        res[arm + "_mean"] = float(np.mean(list(res[arm].values())))
    if fed:
        gaps = {k: fed["per_client"][k] - res["centralized"][k] for k in trains}
        res["checks"] = {"max_gap_to_centralized": float(min(gaps.values())),
                         "every_client_within_2_points": all(g >= -0.02 - 1e-9 for g in gaps.values()),
                         "above_local_only_on_average": fed["mean"] > res["local_only_mean"]}
    res["machine"] = {"python": platform.python_version(), "flwr": flwr.__version__, "numpy": np.__version__,
                      "cpus": os.cpu_count(), "load": os.getloadavg()}
    if args.json:
        print(json.dumps(res, indent=1, default=float))
        return 0
    print(f"FSDD, {len(trains)} clients, {args.rounds} rounds x {args.local_epochs} local epochs "
          f"(flwr {flwr.__version__}, load {os.getloadavg()[0]:.1f})")
    print(f"{'client':10s} {'central':>8s} {'local':>8s} " + " ".join(f"{s:>8s}" for s in res["federated"])
          + " " + " ".join(f"dp{q:>7s}" for q in res["dp"]) + f" {'crash':>8s}")
    for k in trains:
        print(f"{k:10s} {res['centralized'][k]:8.3f} {res['local_only'][k]:8.3f} "
              + " ".join(f"{r['per_client'][k]:8.3f}" for r in res["federated"].values()) + " "
              + " ".join(f"{r['per_client'][k]:9.3f}" for r in res["dp"].values())
              + f" {res['crash']['per_client'][k]:8.3f}")
    for name, r in list(res["federated"].items()) + [("crash", res["crash"])]:
        print(f"{name} curve: " + ", ".join(f"r{h['round']} {h['accuracy']:.3f}" for h in r["curve"]))
    print(json.dumps(res.get("checks", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
