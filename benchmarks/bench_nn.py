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

Fairness: both libraries run under the same glibc allocator settings from the start
(``--allocator``; with glibc's adaptive defaults fresh blocks page-fault, and how often depends
on what ran before in the process: measured 316-332 against 430-460 PyTorch patches per CPU
second at one thread). PyTorch: ``torch.set_num_threads(k)`` before each run, default interop
threads, oneDNN on, default (NCHW) memory format; ``--torch-channels-last`` adds a channels-last
PyTorch run (its fastest layout here). Each (repeat, thread count) runs the libraries back to
back, alternating which goes first, and gives per-pair ratios (median and range reported)
beside the ratio of medians, in wall time and in CPU time.

Usage: ``python benchmarks/bench_nn.py [--n 512] [--repeats 5] [--epochs 3] [--threads 1,2] [--skip-inference] [--json]
[--fsdd DIR] [--allocator pippin|glibc] [--torch-channels-last]``
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


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU from /proc/stat ((0, 0) where there is none)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(fields) - fields[3] - fields[4], sum(fields)


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - wall, _cpu() - cpu


def _spread(values) -> dict:
    """Median, min, max and every value (in run order) of per-pair ratios."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "values": [round(v, 3) for v in values]}


def allocator(mode: str) -> str:
    """Put both libraries under the same glibc allocator settings before any run (see ``--allocator``)."""
    if mode == "glibc":
        os.environ["PIPPIN_KEEP_FREED_MEMORY"] = "0"  # pippin's engine then leaves glibc's defaults too
        return "glibc defaults (adaptive mmap threshold) for both libraries"
    from pippin.pipelines.layers._malloc import MMAP_THRESHOLD, TRIM_THRESHOLD, keep_freed_memory

    if keep_freed_memory():
        return (f"mallopt mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 20} MiB "
                "for both libraries (pippin's own setting, applied before the first run)")
    return "unchanged (not glibc, or MALLOC_* set in the environment)"


def torch_config(channels_last: bool) -> dict:
    """How the PyTorch side runs, as reported in the output."""
    import torch

    return {"version": torch.__version__, "intra_op_threads": "torch.set_num_threads(k) before each run",
            "interop_threads": torch.get_num_interop_threads(), "mkldnn": torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled, "flush_denormal": "off (default)",
            "memory_format": "contiguous NCHW (default)" + ("; also channels_last as torch_cl" if channels_last
                                                           else ""),
            "optimizer": "torch.optim.Adam(lr=3e-3), default implementation", "warm_up": "first round dropped; "
            "epoch 1 of each run excluded from the steady rate"}


def training(x, y, repeats: int, threads=THREADS, epochs: int = 3, channels_last: bool = False) -> dict:
    """Median patches/s and CPU per patch per (library, cores), interleaved pair by pair.

    Each run is one training of ``epochs`` epochs, as ``pippin train sound`` runs one fit for
    all its epochs: ``patches_per_s`` is the steady state (epochs 2..E, timed from the end of
    the first epoch: process start-up and warm-up excluded, for both libraries alike);
    ``first_epoch_patches_per_s`` includes pippin's worker start (a fork per fit) and
    PyTorch's network construction. CPU time covers the whole run.

    In every repeat and thread count pippin and PyTorch run back to back, the order
    alternating between repeats (A B, B A, ...), and each pair gives one ratio: the pair's
    two runs saw nearly the same machine, so the spread of the per-pair ratios shows what
    the load did. Each run also records the load average and how many cores other processes
    kept busy meanwhile (``others_cores``: /proc/stat's busy time minus this run's CPU time).
    """
    import torch

    from pippin.pipelines.update import fit_network

    spec = sound_spec()
    n = len(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours(k, marks):
        fit_network(spec, x, y, epochs=epochs, batch_size=BATCH, learning_rate=3e-3, lr_schedule=None,
                    random_state=0, n_jobs=k, progress=lambda event: marks.append(time.perf_counter()))

    def theirs(k, marks, cl=False):
        torch.set_num_threads(k)
        net = torch_net(spec)
        fmt = torch.channels_last if cl else torch.contiguous_format
        net = net.to(memory_format=fmt)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(n))
            for s in range(0, n, BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad()
                xb = xt[idx].contiguous(memory_format=fmt)
                torch.nn.functional.cross_entropy(net(xb), yt[idx]).backward()
                opt.step()
            marks.append(time.perf_counter())

    libs = [("pippin", ours), ("torch", theirs)]
    if channels_last:
        libs.append(("torch_cl", lambda k, marks: theirs(k, marks, cl=True)))
    runs = {(lib, k): [] for lib, _ in libs for k in threads}
    for rep in range(repeats + 1):  # the first round warms up (numba, torch's kernels)
        for k in threads:
            for lib, fn in (libs if rep % 2 else libs[::-1]):
                marks = []
                busy0, load = _busy_ticks(), os.getloadavg()[0]
                start = time.perf_counter()
                wall, cpu = _timed(lambda: fn(k, marks))
                busy1 = _busy_ticks()
                ticks = busy1[1] - busy0[1]
                cores = os.cpu_count() or 1
                others = (max((busy1[0] - busy0[0]) / ticks * cores * wall - cpu, 0.0) / wall) if ticks else None
                if rep:
                    steady = (marks[-1] - marks[0]) / (len(marks) - 1)
                    runs[(lib, k)].append({"steady_s": steady, "first_s": marks[0] - start, "wall_s": wall,
                                           "cpu_s": cpu, "load": load,
                                           "others_cores": None if others is None else round(others, 2)})
    out = {"epochs_per_run": epochs}
    for (lib, k), rs in runs.items():
        out[f"{lib}_{k}"] = {
            "patches_per_s": round(n / statistics.median(r["steady_s"] for r in rs), 1),
            "first_epoch_patches_per_s": round(n / statistics.median(r["first_s"] for r in rs), 1),
            "cpu_per_wall": round(statistics.median(r["cpu_s"] / r["wall_s"] for r in rs), 2),
            "patches_per_cpu_s": round(statistics.median(n * epochs / r["cpu_s"] for r in rs), 1),
            "cpu_ms_per_patch": round(statistics.median(1e3 * r["cpu_s"] / (n * epochs) for r in rs), 3),
            "runs": [{"patches_per_s": round(n / r["steady_s"], 1), "cpu_ms_per_patch":
                      round(1e3 * r["cpu_s"] / (n * epochs), 3), "load": round(r["load"], 2),
                      "others_cores": r["others_cores"]} for r in rs]}
    others = [lib for lib, _ in libs if lib != "pippin"]
    for k in threads:
        mine = runs[("pippin", k)]
        for lib in others:
            tag = "" if lib == "torch" else f"_vs_{lib}"
            theirs_ = runs[(lib, k)]
            out[f"ratio{tag}_{k}"] = round(out[f"pippin_{k}"]["patches_per_s"] / out[f"{lib}_{k}"]["patches_per_s"], 3)
            out[f"ratio_per_cpu_s{tag}_{k}"] = round(out[f"pippin_{k}"]["patches_per_cpu_s"]
                                                     / out[f"{lib}_{k}"]["patches_per_cpu_s"], 3)
            out[f"ratio_pairs{tag}_{k}"] = _spread([t["steady_s"] / p["steady_s"] for p, t in zip(mine, theirs_)])
            out[f"ratio_per_cpu_s_pairs{tag}_{k}"] = _spread([t["cpu_s"] / p["cpu_s"] for p, t in zip(mine, theirs_)])
    for lib in [lib for lib, _ in libs] if {1, 2} <= set(threads) else ():
        out[f"{lib}_speedup_1_to_2"] = round(out[f"{lib}_2"]["patches_per_s"] / out[f"{lib}_1"]["patches_per_s"], 3)
        out[f"{lib}_speedup_pairs_1_to_2"] = _spread([a["steady_s"] / b["steady_s"]
                                                      for a, b in zip(runs[(lib, 1)], runs[(lib, 2)])])
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
    parser.add_argument("--allocator", choices=("pippin", "glibc"), default="pippin",
                        help="'pippin' (default): glibc's mmap/trim thresholds as pippin sets them, for both "
                             "libraries from the start; 'glibc': glibc's adaptive defaults for both (page faults on "
                             "fresh blocks; how much depends on what ran before in the process)")
    parser.add_argument("--torch-channels-last", action="store_true",
                        help="also run PyTorch with channels_last tensors (its fastest layout here) as 'torch_cl'")
    args = parser.parse_args(argv)
    alloc = allocator(args.allocator)
    x, y, source = patches(args.n, args.fsdd)
    load_before = os.getloadavg()
    threads = tuple(int(v) for v in args.threads.split(","))
    train = training(x, y, args.repeats, threads, max(2, args.epochs), args.torch_channels_last)
    infer = None if args.skip_inference else inference(x, args.repeats)
    info = machine()
    info["allocator"] = alloc
    info["torch_config"] = torch_config(args.torch_channels_last)
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
    for k in threads:
        for tag, lib in (("", "torch"), ("_vs_torch_cl", "torch_cl")):
            if f"ratio_pairs{tag}_{k}" not in train:
                continue
            r, c = train[f"ratio_pairs{tag}_{k}"], train[f"ratio_per_cpu_s_pairs{tag}_{k}"]
            print(f"{k} thread(s), pippin / {lib}, per pair: wall {r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}], "
                  f"CPU {c['median']:.3f} [{c['min']:.3f}-{c['max']:.3f}]; CPU ms/patch pippin "
                  f"{train[f'pippin_{k}']['cpu_ms_per_patch']}, {lib} {train[f'{lib}_{k}']['cpu_ms_per_patch']}")
    if "pippin_speedup_1_to_2" in train:
        sp = train["pippin_speedup_pairs_1_to_2"]
        print(f"speed-up 1 -> 2: pippin {train['pippin_speedup_1_to_2']}x (per repeat {sp['min']}-{sp['max']}), "
              f"torch {train['torch_speedup_1_to_2']}x")
    loads = [r["load"] for key, v in train.items() if isinstance(v, dict) and "runs" in v for r in v["runs"]]
    others = [r["others_cores"] for key, v in train.items() if isinstance(v, dict) and "runs" in v
              for r in v["runs"] if r["others_cores"] is not None]
    if loads:
        print(f"load average at the runs' starts {min(loads):.2f}-{max(loads):.2f}; cores other processes kept busy "
              f"during a run: {min(others, default=0):.2f}-{max(others, default=0):.2f}")
    if infer:
        print(f"inference (batch {infer['batch']}, 2 threads): pippin {infer['pippin_patches_per_s']}/s vs torch "
              f"{infer['torch_patches_per_s']}/s: ratio {infer['ratio']}")


if __name__ == "__main__":
    main()
