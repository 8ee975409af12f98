"""Few-shot sound classifiers: a frozen pretrained backbone plus a small head, against "scratch", on the same splits.

Tasks (protocols in ``_fewshot_data.py``'s docstring):

- drums: the Hydrogen kits (``apt-get install hydrogen-drumkits``), 7 classes, 5 folds
  that hold whole kits out; the head trains on each training clip plus
  ``--drum-augment`` changed copies (pitch, filter, saturation, noise);
- FSDD few-shot: leave one speaker out, k = 5 and 20 recordings per digit in total
  from the other five speakers, averaged over the six speakers;
- personalization: a head on eight digits learns two more from 5 recordings each.

For every backbone: accuracies per fold/speaker (mean and spread over ``--seeds``),
embedding throughput (windows/s, batched) and head training time. "scratch" is
``SoundClassifier`` trained on the same clips; "log-mel" is a linear head on the
mean and standard deviation of the VGGish log-mel patch of each clip's first window.

    python benchmarks/bench_fewshot.py [--reference] [--backbones sounds,speech] [--seeds 3]
        [--skip-scratch] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import _fewshot_data as data
import _fewshot_heads as heads
from timing import median_seconds
from pippin.audio.backbones import BACKBONE_WINDOWS
from pippin.audio.defaults import DEFAULTS
from pippin.audio.io import windows_of
from pippin.audio.wave_augment import WaveAugmenter
from pippin.datasets import SoundDataset
from pippin.datasets.drums import load_drumkits

FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"

# Per backbone: sample rate, window (samples) and where a short clip sits in its window.
# sounds (aisfx): 2.30 s windows (100 STFT frames, 12 steps), one-shots start the window; speech:
# 1.5 s windows (10 steps of 80 ms), short clips centred -- with the word at the window's start
# the 0.775 s receptive field sees mostly silence, and FSDD k=5 / k=20 fall from 0.95 / 0.97 to
# 0.39 / 0.50 with the same head (a (1, 3) convolution over time instead: 0.38 / 0.52).
# Windows and heads are SoundClassifier's (pippin.audio.backbones, pippin.audio.defaults): HEAD, the
# drums head, is the "sounds" defaults; FSDD_HEAD, the FSDD and personalization head, the "speech" ones.
SETTINGS = {name: {"rate": BACKBONE_WINDOWS[name][0], "window": BACKBONE_WINDOWS[name][1],
                   "align": BACKBONE_WINDOWS[name][2]} for name in BACKBONE_WINDOWS}


def _head(extractor: str) -> dict:
    return {k: DEFAULTS[extractor][k] for k in ("hidden", "epochs", "batch_size", "learning_rate", "weight_decay")}


HEAD, FSDD_HEAD = _head("sounds"), _head("speech")


def embedder(backbone: str, *, reference: bool):
    """``embed(windows [n, window] float32) -> [n, n_steps, dim]`` for a backbone."""
    if reference:
        import _fewshot_reference

        return _fewshot_reference.REFERENCE[backbone][0]
    from pippin.audio.backbones import get_backbone  # the shipped NumPy backbones, as SoundClassifier uses them

    return get_backbone(backbone).sequence


def embed(paths, backbone, embed_fn, name, **kw):
    s = SETTINGS[backbone]
    return data.embed_files(paths, embed=embed_fn, rate=s["rate"], window=s["window"], overlap=0.5,
                            align=s["align"], max_windows=1,
                            name=f"{name}-{backbone}-{embed_fn.__module__}", **kw)[0]


def _accuracy(spec, steps, labels) -> float:
    classes = np.array(list(spec.neuralNetworkClassifier.stringClassLabels.vector))
    probs = heads.head_probabilities(spec, steps)
    return float((classes[probs.argmax(1)] == np.asarray(labels)).mean())


def _summary(per_seed: list[list[float]]) -> dict:
    a = np.array(per_seed)
    return {"mean": float(a.mean()), "spread_over_folds": float(a.mean(0).std()) if a.shape[1] > 1 else 0.0,
            "spread_over_seeds": float(a.mean(1).std()), "min_fold": float(a.mean(0).min()),
            "per_fold": a.mean(0).round(4).tolist(), "per_seed": a.mean(1).round(4).tolist()}


# -- drums ---------------------------------------------------------------------------
def drums_backbone(ds, folds, backbone, embed_fn, *, seeds, n_aug, log) -> dict:
    labels = np.array(ds.labels)
    orig = embed(ds.paths, backbone, embed_fn, "drums")
    augs = [embed(ds.paths, backbone, embed_fn, f"drums-aug{c}", augment=WaveAugmenter(), seed=c)
            for c in range(n_aug)]
    per_seed, train_s = [], []
    for seed in seeds:
        accs = []
        for te in folds:
            x = np.concatenate([orig[~te]] + [a[~te] for a in augs])
            t0 = time.perf_counter()
            spec, _ = heads.train_head(x, np.tile(labels[~te], 1 + n_aug), seed=seed, **HEAD)
            train_s.append(time.perf_counter() - t0)
            accs.append(_accuracy(spec, orig[te], labels[te]))
        per_seed.append(accs)
        log(f"drums {backbone} seed {seed}: {np.mean(accs):.3f} {np.round(accs, 3).tolist()}")
    return {**_summary(per_seed), "head_train_seconds": float(np.median(train_s)),
            "n_train_examples": int((~folds[0]).sum() * (1 + n_aug))}


def drums_scratch(ds, folds, *, seeds, log) -> dict:
    from pippin.audio import SoundClassifier

    per_seed = []
    for seed in seeds:
        accs = []
        for te in folds:
            clf = SoundClassifier(feature_extractor="scratch", random_state=seed, progress=False).fit(ds.subset(~te))
            accs.append(clf.evaluate(ds.subset(te))["accuracy"])
        per_seed.append(accs)
        log(f"drums scratch seed {seed}: {np.mean(accs):.3f} {np.round(accs, 3).tolist()}")
    return _summary(per_seed)


# -- FSDD ------------------------------------------------------------------------------
def fsdd_heads(steps, table, *, ks, seeds, log, name, head=FSDD_HEAD) -> dict:
    out = {}
    for k in ks:
        per_seed, train_s = [], []
        for seed in seeds:
            accs = []
            for _, tr, te in data.fsdd_fewshot_splits(table, k=k, seed=seed):
                t0 = time.perf_counter()
                spec, _ = heads.train_head(steps[tr], table["digit"][tr], seed=seed,
                                           batch_size=16 if k <= 5 else 32, **head)
                train_s.append(time.perf_counter() - t0)
                accs.append(_accuracy(spec, steps[te], table["digit"][te]))
            per_seed.append(accs)
            log(f"fsdd {name} k={k} seed {seed}: {np.mean(accs):.3f} {np.round(accs, 3).tolist()}")
        out[f"k{k}"] = {**_summary(per_seed), "head_train_seconds": float(np.median(train_s))}
    return out


def fsdd_scratch(paths, table, *, ks, seeds, log) -> dict:
    from pippin.audio import SoundClassifier

    full = SoundDataset(paths, table["digit"].tolist())
    out = {}
    for k in ks:
        per_seed = []
        for seed in seeds:
            accs = [SoundClassifier(feature_extractor="scratch", random_state=seed, progress=False).fit(full.subset(tr))
                    .evaluate(full.subset(te))["accuracy"]
                    for _, tr, te in data.fsdd_fewshot_splits(table, k=k, seed=seed)]
            per_seed.append(accs)
            log(f"fsdd scratch k={k} seed {seed}: {np.mean(accs):.3f}")
        out[f"k{k}"] = _summary(per_seed)
    return out


def log_mel_stats(paths) -> np.ndarray:
    """[n, 1, 128]: mean and std over frames of the VGGish log-mel of each clip's first 975 ms window."""
    from pippin.audio import vggish_log_mel

    windows = np.stack([windows_of(data.read_clip(p, 16000), window=15600, overlap=0.5)[0] for p in paths])
    patches = vggish_log_mel(windows)[:, 0]
    return np.concatenate([patches.mean(1), patches.std(1)], 1)[:, None, :].astype(np.float32)


# -- personalization ---------------------------------------------------------------------
def personalization(steps, table, *, seeds, pairs, log) -> dict:
    """Base head on eight digits; a new head on 20 stored examples per old digit + the 5 new
    recordings of each new digit (repeated 4 times); also a 3-NN on L2-normalised pooled embeddings."""
    digit = table["digit"]
    rows = []
    for pair in pairs:
        for seed in seeds:
            sp = data.personalization_split(table, new_digits=pair, seed=seed)
            base, _ = heads.train_head(steps[sp["base_train"]], digit[sp["base_train"]], seed=seed,
                                       **{**FSDD_HEAD, "epochs": 30})
            before = _accuracy(base, steps[sp["old_test"]], digit[sp["old_test"]])
            rng = np.random.default_rng(seed)
            stored = np.concatenate([rng.choice(sp["base_train"][digit[sp["base_train"]] == d], 20, replace=False)
                                     for d in sorted(set(digit[sp["base_train"]].tolist()))])
            train = np.concatenate([stored] + [sp["new_train"]] * 4)
            t0 = time.perf_counter()
            head, _ = heads.train_head(steps[train], digit[train], seed=seed, **FSDD_HEAD)
            seconds = time.perf_counter() - t0
            row = {"pair": "".join(pair), "seed": seed, "old_before": before, "head_seconds": seconds,
                   "head_new": _accuracy(head, steps[sp["new_test"]], digit[sp["new_test"]]),
                   "head_old": _accuracy(head, steps[sp["old_test"]], digit[sp["old_test"]])}
            ref = np.concatenate([stored, sp["new_train"]])
            row["knn_new"], row["knn_old"] = (_knn(steps[ref], digit[ref], steps[sp[s]], digit[sp[s]])
                                              for s in ("new_test", "old_test"))
            rows.append(row)
            log(f"personalize {row['pair']} seed {seed}: head new {row['head_new']:.3f} old {row['head_old']:.3f} "
                f"(before {before:.3f}); 3-NN new {row['knn_new']:.3f} old {row['knn_old']:.3f}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("pair", "seed")}
    mean["head_old_drop_points"] = 100 * (mean["old_before"] - mean["head_old"])
    mean["knn_old_drop_points"] = 100 * (mean["old_before"] - mean["knn_old"])
    mean["head_new_min"] = float(min(r["head_new"] for r in rows))
    return {"mean": mean, "runs": rows}


def _knn(ref, ref_labels, query, labels, k: int = 3) -> float:
    def pooled(s):
        x = np.concatenate([s.max(1), s.mean(1)], 1)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    r, q = pooled(ref), pooled(query)
    d = ((q[:, None] - r[None]) ** 2).sum(-1)
    nearest = np.argsort(d, 1)[:, :k]
    classes = sorted(set(ref_labels.tolist()))
    votes = np.zeros((len(q), len(classes)))
    for j in range(k):
        idx = nearest[:, j]
        np.add.at(votes, (np.arange(len(q)), [classes.index(v) for v in ref_labels[idx]]),
                  1.0 / (d[np.arange(len(q)), idx] + 1e-9))
    return float((np.array(classes)[votes.argmax(1)] == labels).mean())


def throughput(backbone, embed_fn, *, n: int = 64, repeats: int = 3) -> float:
    s = SETTINGS[backbone]
    windows = np.random.default_rng(0).standard_normal((n, s["window"])).astype(np.float32) * 0.1
    return n / median_seconds(lambda: embed_fn(windows), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true",
                        help="embed with the reference implementations (PyTorch aisfx, onnxruntime speech embedding)")
    parser.add_argument("--backbones", default="sounds,speech")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (head init and FSDD draws) to average over")
    parser.add_argument("--drum-augment", type=int, default=4, help="augmented copies of each training drum clip")
    parser.add_argument("--skip-scratch", action="store_true", help="do not train SoundClassifier (slow)")
    parser.add_argument("--quick", action="store_true", help="one seed, scratch on seed 0 only, 2 digit pairs")
    parser.add_argument("--fsdd", default=str(FSDD))
    parser.add_argument("--drumkits", default=None, help="default /usr/share/hydrogen/data/drumkits")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    seeds = [0] if args.quick else list(range(args.seeds))
    pairs = [("8", "9"), ("0", "1")] if args.quick else [("8", "9"), ("0", "1"), ("3", "7")]
    ds = load_drumkits(args.drumkits)
    folds = data.kit_folds(ds.extra["groups"])
    fsdd_paths = sorted(str(p) for p in Path(args.fsdd).glob("*.wav"))
    table = data.fsdd_table(fsdd_paths)
    result = {"benchmark": "fewshot", "embeddings": "reference" if args.reference else "pippin",
              "drums": {"n_clips": len(ds), "n_kits": len(ds.extra["kits"]),
                        "fold_sizes": [int(f.sum()) for f in folds],
                        "augmented_copies": args.drum_augment, "head": HEAD},
              "fsdd": {"n_clips": len(fsdd_paths), "head": FSDD_HEAD}, "settings": SETTINGS, "seeds": seeds,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_start": os.getloadavg()},
              "versions": {"python": sys.version.split()[0], "numpy": np.__version__}}
    for backbone in args.backbones.split(","):
        fn = embedder(backbone, reference=args.reference)
        result["drums"][backbone] = drums_backbone(ds, folds, backbone, fn, seeds=seeds, n_aug=args.drum_augment,
                                                   log=log)
        steps = embed(fsdd_paths, backbone, fn, "fsdd")
        result["fsdd"][backbone] = fsdd_heads(steps, table, ks=(5, 20), seeds=seeds, log=log, name=backbone)
        result.setdefault("personalization", {})[backbone] = personalization(steps, table, seeds=seeds,
                                                                             pairs=pairs, log=log)
        result.setdefault("throughput_windows_per_second", {})[backbone] = throughput(backbone, fn)
    logmel = log_mel_stats(fsdd_paths)
    result["fsdd"]["log-mel"] = fsdd_heads(logmel, table, ks=(5, 20), seeds=seeds, log=log, name="log-mel",
                                           head=FSDD_HEAD)  # one step: max and mean pool the same
    if not args.skip_scratch:
        scratch_seeds = seeds[:1] if args.quick else seeds
        result["drums"]["scratch"] = drums_scratch(ds, folds, seeds=scratch_seeds, log=log)
        result["fsdd"]["scratch"] = fsdd_scratch(fsdd_paths, table, ks=(5, 20), seeds=scratch_seeds, log=log)
    result["machine"]["load_average_end"] = os.getloadavg()
    if args.reference:
        import onnxruntime
        import torch

        result["versions"].update(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_table(result)
    return 0


def _print_table(result: dict) -> None:
    names = [n for n in ("sounds", "speech", "log-mel", "scratch") if n in result["fsdd"] or n in result["drums"]]
    print("| model | drums (kits held out) | FSDD k=5 | FSDD k=20 | embed windows/s | head train s (drums) |")
    print("|---|---|---|---|---|---|")
    fmt = lambda r: f"{r['mean']:.3f} +- {r['spread_over_folds']:.3f}" if r else "-"
    for n in names:
        d, f = result["drums"].get(n), result["fsdd"].get(n, {})
        tput = result.get("throughput_windows_per_second", {}).get(n)
        head_s = d.get("head_train_seconds") if d else None
        print(f"| {n} | {fmt(d)} | {fmt(f.get('k5'))} | {fmt(f.get('k20'))} | "
              f"{f'{tput:.0f}' if tput else '-'} | {f'{head_s:.1f}' if head_s else '-'} |")
    for n, p in result.get("personalization", {}).items():
        m = p["mean"]
        print(f"personalization ({n}): head new {m['head_new']:.3f} (min {m['head_new_min']:.3f}), old drop "
              f"{m['head_old_drop_points']:.1f} pts; 3-NN new {m['knn_new']:.3f}, "
              f"old drop {m['knn_old_drop_points']:.1f} pts")
    print(f"load average {result['machine']['load_average_start'][0]:.1f} -> "
          f"{result['machine']['load_average_end'][0]:.1f} on {result['machine']['cpus']} CPUs")


if __name__ == "__main__":
    sys.exit(main())
