"""Neural-network training and inference speed: pippin vs PyTorch CPU on the sound classifier's CNN.

The network is the one ``pippin train sound`` trains (``pippin.audio.network.build_network``:
three 3x3 convolutions with 16/32/64 channels, each with batchnorm and ReLU, 2x2 max
pooling after the first two, global mean and max pooling concatenated, dense 64,
ReLU, dense 10, softmax), on FSDD log-mel patches ([1, 96, 64], one per recording,
``--fsdd``; random patches if the folder is absent). Both libraries run the same
initial weights on the same data in this one process.

- training: steady-state patches/s per epoch (epochs 2..E of one E-epoch run) of Adam (lr 3e-3) mini-batch training at batch 32
  (forward, loss, backward, update; batchnorm in training mode): pippin's
  ``fit_network(..., n_jobs=k)`` against a PyTorch loop under ``torch.set_num_threads(k)``,
  for k = 1 and 2 cores, all four interleaved in each repeat (so a change of machine
  load hits every column alike); median of ``--repeats`` after a warm-up. Also
  reported: each run's CPU time over wall time (this process plus its reaped children:
  pippin's k - 1 training worker processes end with each fit), patches per CPU second
  (which a busy machine disturbs less than wall time), and the 1 -> 2 speed-ups.
- inference: patches/s of ``model.predict_batch`` against ``model(x)`` under
  ``torch.no_grad()`` (2 threads), at batch 64.

Usage: ``python benchmarks/bench_nn.py [--n 512] [--repeats 5] [--epochs 3] [--threads 1,2] [--skip-inference] [--json]
[--fsdd DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

BATCH = 32
THREADS = (1, 2)
FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fsdd"


def patches(n: int, fsdd: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` patches [n, 1, 96, 64] and digit labels: the first window of FSDD recordings, else random."""
    files = sorted((fsdd / "recordings").glob("*.wav")) if (fsdd / "recordings").is_dir() else []
    if not files:
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, 1, 96, 64)).astype(np.float32), rng.integers(0, 10, n), "random"
    from pippin.audio.features import featurize_files

    chosen = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:n]]
    feats = featurize_files(chosen, progress=False)
    first = np.unique(feats.clip_index, return_index=True)[1]
    labels = np.array([int(chosen[i].name.split("_")[0]) for i in feats.clip_index[first]])
    return feats.patches[first], labels, f"fsdd ({len(first)} recordings)"


def sound_spec(seed=0):
    from pippin.audio.network import build_network

    return build_network([str(i) for i in range(10)], seed=seed, learning_rate=3e-3, batch_size=BATCH, epochs=1)


def torch_net(spec):
    import torch

    layers = {layer.name: layer for layer in spec.neuralNetworkClassifier.layers}

    def arr(name, field, shape):
        p = getattr(layers[name], layers[name].WhichOneof("layer"))
        return torch.tensor(np.array(getattr(p, field).floatValue, np.float32).reshape(shape))

    chans = [(1, 16), (16, 32), (32, 64)]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(torch.nn.Conv2d(a, b, 3, padding=1) for a, b in chans)
            self.bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(b) for _, b in chans)
            self.fc1, self.fc2 = torch.nn.Linear(128, 64), torch.nn.Linear(64, 10)
            with torch.no_grad():
                for i, (a, b) in enumerate(chans):
                    self.convs[i].weight.copy_(arr(f"conv{i + 1}", "weights", (b, a, 3, 3)))
                    self.convs[i].bias.copy_(arr(f"conv{i + 1}", "bias", (b,)))
                for fc, name, shape in ((self.fc1, "dense1", (64, 128)), (self.fc2, "dense2", (10, 64))):
                    fc.weight.copy_(arr(name, "weights", shape))
                    fc.bias.copy_(arr(name, "bias", shape[:1]))

        def forward(self, x):
            for i in range(3):
                x = torch.relu(self.bns[i](self.convs[i](x)))
                if i < 2:
                    x = torch.nn.functional.max_pool2d(x, 2)
            x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
            return self.fc2(torch.relu(self.fc1(x)))

    return Net()


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (pippin's worker processes end with each fit)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - wall, _cpu() - cpu


def training(x, y, repeats: int, threads=THREADS, epochs: int = 3) -> dict:
    """Median patches/s and CPU/wall per (library, cores), interleaved.

    Each run is one training of ``epochs`` epochs, as ``pippin train sound`` runs one fit for
    all its epochs: ``patches_per_s`` is the steady state (epochs 2..E, timed from the end of
    the first epoch: process start-up and warm-up excluded, for both libraries alike);
    ``first_epoch_patches_per_s`` includes pippin's worker start (a fork per fit) and
    PyTorch's network construction. CPU time covers the whole run.
    """
    import torch

    from pippin.pipelines.update import fit_network

    spec = sound_spec()
    n = len(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours(k, marks):
        fit_network(spec, x, y, epochs=epochs, batch_size=BATCH, learning_rate=3e-3, lr_schedule=None,
                    random_state=0, n_jobs=k, progress=lambda event: marks.append(time.perf_counter()))

    def theirs(k, marks):
        torch.set_num_threads(k)
        net = torch_net(spec)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(n))
            for s in range(0, n, BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
            marks.append(time.perf_counter())

    runs = {(lib, k): [] for lib in ("pippin", "torch") for k in threads}
    for rep in range(repeats + 1):  # the first round warms up (numba, torch's kernels)
        for k in threads:
            for lib, fn in (("pippin", ours), ("torch", theirs)):
                marks = []
                start = time.perf_counter()
                wall, cpu = _timed(lambda: fn(k, marks))
                if rep:
                    steady = (marks[-1] - marks[0]) / (len(marks) - 1)
                    runs[(lib, k)].append((steady, marks[0] - start, wall, cpu))
    out = {"epochs_per_run": epochs}
    for (lib, k), times in runs.items():
        out[f"{lib}_{k}"] = {"patches_per_s": round(n / statistics.median(t[0] for t in times), 1),
                             "first_epoch_patches_per_s": round(n / statistics.median(t[1] for t in times), 1),
                             "cpu_per_wall": round(statistics.median(t[3] / t[2] for t in times), 2),
                             "patches_per_cpu_s": round(statistics.median(n * epochs / t[3] for t in times), 1)}
    for k in threads:
        out[f"ratio_{k}"] = round(out[f"pippin_{k}"]["patches_per_s"] / out[f"torch_{k}"]["patches_per_s"], 3)
        out[f"ratio_per_cpu_s_{k}"] = round(out[f"pippin_{k}"]["patches_per_cpu_s"]
                                            / out[f"torch_{k}"]["patches_per_cpu_s"], 3)
    for lib in ("pippin", "torch") if {1, 2} <= set(threads) else ():
        out[f"{lib}_speedup_1_to_2"] = round(out[f"{lib}_2"]["patches_per_s"] / out[f"{lib}_1"]["patches_per_s"], 3)
    return out


def inference(x, repeats: int, batch: int = 64) -> dict:
    import torch

    import pippin.pipelines as pp

    torch.set_num_threads(2)
    spec = sound_spec()
    model = pp.load(spec)
    net = torch_net(spec).eval()
    xt = torch.from_numpy(x)
    n = len(x)

    def ours():
        for s in range(0, n, batch):
            model.predict_batch({"preprocessedAudio": x[s:s + batch]})

    def theirs():
        with torch.no_grad():
            for s in range(0, n, batch):
                torch.softmax(net(xt[s:s + batch]), dim=1)

    times = {"pippin": [], "torch": []}
    for rep in range(repeats + 1):
        for lib, fn in (("pippin", ours), ("torch", theirs)):
            wall, _ = _timed(fn)
            if rep:
                times[lib].append(wall)
    p, t = (n / statistics.median(times[k]) for k in ("pippin", "torch"))
    return {"batch": batch, "pippin_patches_per_s": round(p, 1), "torch_patches_per_s": round(t, 1),
            "ratio": round(p / t, 3)}


def machine() -> dict:
    import numpy
    import scipy
    import torch

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="patches per epoch (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting (median; default 5)")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="FSDD folder (with recordings/)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per training run; epochs 2.. give the steady-state rate (default 3)")
    parser.add_argument("--threads", default="1,2",
                        help="core/thread counts to compare, comma-separated (default 1,2; '1' keeps PyTorch's "
                             "2-thread pool out of the 1-thread runs)")
    parser.add_argument("--skip-inference", action="store_true", help="time training only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    x, y, source = patches(args.n, args.fsdd)
    load_before = os.getloadavg()
    threads = tuple(int(v) for v in args.threads.split(","))
    train = training(x, y, args.repeats, threads, max(2, args.epochs))
    infer = None if args.skip_inference else inference(x, args.repeats)
    info = machine()
    info["load_average_before"] = [round(v, 2) for v in load_before]
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        print(json.dumps({"machine": info, "data": source, "n": len(y), "batch": BATCH, "repeats": args.repeats,
                          "training": train, "inference": infer}))
        return
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"data: {source}, batch {BATCH}, median of {args.repeats} runs of {train['epochs_per_run']} epochs")
    print(f"{'training epoch':16s} {'pippin/s':>9s} {'cpu/wall':>8s} {'torch/s':>9s} {'cpu/wall':>8s} {'ratio':>6s}"
          f" {'per CPU s: pippin':>17s} {'torch':>7s} {'ratio':>6s}")
    for k in threads:
        p, t = train[f"pippin_{k}"], train[f"torch_{k}"]
        print(f"{k} core(s)/threads {p['patches_per_s']:9.1f} {p['cpu_per_wall']:8.2f} {t['patches_per_s']:9.1f} "
              f"{t['cpu_per_wall']:8.2f} {train[f'ratio_{k}']:6.3f} {p['patches_per_cpu_s']:17.1f} "
              f"{t['patches_per_cpu_s']:7.1f} {train[f'ratio_per_cpu_s_{k}']:6.3f}")
    print("first epoch of a run (pippin: incl. starting its worker processes), patches/s: "
          + ", ".join(f"{lib} {k}: {train[f'{lib}_{k}']['first_epoch_patches_per_s']}"
                      for k in threads for lib in ("pippin", "torch")))
    if "pippin_speedup_1_to_2" in train:
        print(f"speed-up 1 -> 2: pippin {train['pippin_speedup_1_to_2']}x, torch {train['torch_speedup_1_to_2']}x")
    if infer:
        print(f"inference (batch {infer['batch']}, 2 threads): pippin {infer['pippin_patches_per_s']}/s vs torch "
              f"{infer['torch_patches_per_s']}/s: ratio {infer['ratio']}")


if __name__ == "__main__":
    main()
