"""FSDD sound classifier: train on the conventional split, evaluate, report time and test accuracy.

The conventional split of the Free Spoken Digit Dataset: takes 0-4 of every digit
and speaker are the test set, takes 5-49 the training set. Pippin's run is what
``pippin train sound`` + ``pippin evaluate`` do (features, training with early
stopping, export, evaluation through the exported pipeline in Pippin's runtime).
With ``--torch`` the same CNN is also trained in PyTorch CPU on the same features,
in the same process, as the reference (time and accuracy side by side).

    python benchmarks/bench_sound.py [--data ../shared/datasets/fsdd] [--feature-extractor auto|scratch|sounds|speech]
        [--epochs N] [--seed N] [--no-augment] [--torch] [--json]

Defaults are ``SoundClassifier``'s (so the CLI's): ``--feature-extractor auto``. ``--torch``
trains the scratch CNN in PyTorch, so compare it with ``--feature-extractor scratch``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pippin.audio import SoundClassifier
from pippin.audio.classifier import evaluate_model
from pippin.audio.features import featurize_files
from pippin.audio.network import CONV_CHANNELS, DENSE_UNITS
from pippin.datasets import load_fsdd
from pippin.pipelines import load

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd"


def run_pippin(train, test, *, feature_extractor: str, epochs: int | None, seed: int, log,
               validation_fraction: float | None, patience: int, augment: bool = True) -> dict:
    t0 = time.perf_counter()
    clf = SoundClassifier(feature_extractor=feature_extractor, epochs=epochs, random_state=seed, progress=False, validation_fraction=validation_fraction,
                          early_stopping_patience=patience, augment=augment)
    clf.fit(train, on_epoch=lambda r: log(f"epoch {r['epoch']}: loss {r['loss']:.4f} "
                                            f"train acc {r['train_accuracy']:.4f} val acc {r['val_accuracy'] or 0:.4f} "
                                            f"({time.perf_counter() - t0:.0f} s)"))
    t_train = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        path = clf.export(Path(folder) / "fsdd.mlmodel")
        t1 = time.perf_counter()
        report = evaluate_model(load(path), test, overlap=0.5)
        t_eval = time.perf_counter() - t1
    return {"train_seconds": t_train, "evaluate_seconds": t_eval, "total_seconds": t_train + t_eval,
            "test_accuracy": report["accuracy"], "feature_extractor": clf.feature_extractor_,
            "selection": clf.selection_, "epochs_run": clf.history_["epochs_run"],
            "best_epoch": clf.history_["best_epoch"], "n_train_windows": clf.training_summary_["n_windows"],
            "n_test_clips": report["n_clips"]}


def run_torch(train, test, *, epochs: int, seed: int, log) -> dict:
    """The PyTorch reference: the same CNN as Pippin's, Adam 3e-3 cosine, batch 32, on the same
    features (no augmentation, no validation split)."""
    import torch
    from torch import nn

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    feats = featurize_files(train.paths, progress=False)
    classes = sorted(set(train.labels))
    y = torch.tensor([classes.index(train.labels[i]) for i in feats.clip_index])
    x = torch.from_numpy(feats.patches)

    def block(c_in, c_out, pool):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    c1, c2, c3 = CONV_CHANNELS
    body = nn.Sequential(*block(1, c1, True), *block(c1, c2, True), *block(c2, c3, False))
    head = nn.Sequential(nn.Linear(2 * c3, DENSE_UNITS), nn.ReLU(), nn.Linear(DENSE_UNITS, len(classes)))

    def forward(batch):
        h = body(batch)
        return head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for epoch in range(epochs):
        body.train()
        head.train()
        for idx in torch.randperm(len(y)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(forward(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
        log(f"torch epoch {epoch + 1} ({time.perf_counter() - t0:.0f} s)")
    t_train = time.perf_counter() - t0
    body.eval()
    head.eval()
    test_feats = featurize_files(test.paths, progress=False)
    with torch.no_grad():
        probs = torch.softmax(forward(torch.from_numpy(test_feats.patches)), dim=1).numpy()
    clip_probs = np.zeros((len(test), len(classes)))
    np.add.at(clip_probs, test_feats.clip_index, probs)
    truth = np.array([classes.index(label) for label in test.labels])
    return {"train_seconds": t_train, "test_accuracy": float((clip_probs.argmax(1) == truth).mean()),
            "total_seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the FSDD folder (or its recordings/)")
    defaults = {k: p.default for k, p in inspect.signature(SoundClassifier).parameters.items()}
    parser.add_argument("--feature-extractor", default=defaults["feature_extractor"],
                        choices=("auto", "scratch", "sounds", "speech"))
    parser.add_argument("--epochs", type=int, default=defaults["epochs"], help="default: the extractor's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-fraction", type=float, default=defaults["validation_fraction"])
    parser.add_argument("--patience", type=int, default=defaults["early_stopping_patience"])
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--torch", action="store_true", help="also train the PyTorch reference")
    parser.add_argument("--torch-only", action="store_true", help="train only the PyTorch reference (seed spread)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    train, test = load_fsdd(args.data, split="train"), load_fsdd(args.data, split="test")
    result = {
        "benchmark": "sound", "dataset": "FSDD conventional split", "n_train_files": len(train),
        "n_test_files": len(test), "epochs": args.epochs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_start": os.getloadavg()},
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__},
        "validation_fraction": args.validation_fraction, "patience": args.patience, "augment": args.augment,
    }
    if not args.torch_only:
        result["pippin"] = run_pippin(train, test, feature_extractor=args.feature_extractor, epochs=args.epochs, seed=args.seed, log=log,
                                      validation_fraction=args.validation_fraction, patience=args.patience,
                                      augment=args.augment)
    if args.torch or args.torch_only:
        import torch

        result["versions"]["torch"] = torch.__version__
        from pippin.audio.defaults import DEFAULTS

        result["torch"] = run_torch(train, test, epochs=args.epochs or DEFAULTS["scratch"]["epochs"], seed=args.seed,
                                    log=log)
        if "pippin" in result:
            result["train_time_ratio_pippin_over_torch"] = (result["pippin"]["train_seconds"]
                                                            / result["torch"]["train_seconds"])
    result["machine"]["load_average_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    p = result.get("pippin")
    if p is not None:
        print(f"pippin ({p['feature_extractor']}): test accuracy {p['test_accuracy']:.4f} ({p['n_test_clips']} clips); train {p['train_seconds']:.0f} s "
              f"({p['epochs_run']} epochs, {p['n_train_windows']} windows), evaluate {p['evaluate_seconds']:.1f} s, "
              f"total {p['total_seconds']:.0f} s")
    if "torch" in result:
        t = result["torch"]
        ratio = result.get("train_time_ratio_pippin_over_torch")
        print(f"torch:  test accuracy {t['test_accuracy']:.4f}; train {t['train_seconds']:.0f} s"
              + (f"; pippin/torch train time {ratio:.2f}x" if ratio else ""))
    print(f"load average {result['machine']['load_average_start'][0]:.1f} -> "
          f"{result['machine']['load_average_end'][0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
