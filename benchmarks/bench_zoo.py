"""Pippin's neural-network runtime against PyTorch and ONNX Runtime on a zoo of converted models.

Each zoo model (``_zoo_models.ZOO``: ResNet-18, MobileNet v2, EfficientNet-B0, ShuffleNet v2,
DenseNet-121, SqueezeNet, LSTM / GRU / BiLSTM text models, a Transformer encoder, a 3-layer
MLP) is built in PyTorch with random weights, converted by coremltools to a Core ML
neural-network file (``convert_to="neuralnetwork"``; the GRU comes out as a ``loop`` layer)
and exported to ONNX (``torch.onnx.export``). All three then run the same batch. For each
thread count (every model at one count, then every model at the next) the three are timed in
turn, round after round (interleaved), so a load change on the shared machine hits all of
them (each call after a short pause, ``PAUSE``, in which threads the previous library left
spin-waiting go to sleep); the median of the rounds is reported with the load average, and the same ratio in
process CPU time (``cpu vs``: what each call costs in CPU seconds, less sensitive to other
jobs on a loaded machine). One thread means: the process pinned to one core,
``torch.set_num_threads(1)``, an ONNX Runtime session with ``intra_op_num_threads=1``, BLAS
limited to 1 thread.

Usage: ``python benchmarks/bench_zoo.py [--models a,b] [--threads 1,2] [--repeats 7] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np

from _zoo_models import ZOO


def _quiet():
    """Silence coremltools' progress bars and the converters' warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _randomize_norms(net, torch):
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)


def prepare(name: str, batch: int | None, *, onnx: bool = True):
    """The PyTorch net, the loaded Pippin model, ONNX bytes and the inputs of zoo model ``name``."""
    import coremltools as ct
    import torch

    import pippin.pipelines as pp
    from pippin.spec import loads

    make, shape, default_batch = ZOO[name]
    n = batch or default_batch
    torch.manual_seed(0)
    net = make().eval()
    _randomize_norms(net, torch)
    x = np.random.default_rng(0).standard_normal((n,) + shape).astype(np.float32)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, torch.from_numpy(x[:1]))
        spec = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1,) + shape)],
                          convert_to="neuralnetwork").get_spec()
        onnx_bytes = None
        if onnx:
            buffer = io.BytesIO()
            torch.onnx.export(net, (torch.from_numpy(x),), buffer, input_names=["x"], output_names=["y"],
                              opset_version=17, dynamo=False)
            onnx_bytes = buffer.getvalue()
    model = pp.load(loads(spec.SerializeToString()))
    return {"net": net, "model": model, "onnx": onnx_bytes, "x": x, "output": spec.description.output[0].name,
            "layers": _layer_kinds(spec.neuralNetwork.layers)}


def _layer_kinds(layers) -> list[str]:
    kinds = []
    for layer in layers:
        kind = layer.WhichOneof("layer")
        kinds.append(kind)
        if kind == "loop":
            kinds += _layer_kinds(layer.loop.bodyNetwork.layers) + _layer_kinds(layer.loop.conditionNetwork.layers)
    return kinds


def _ort_session(onnx_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


#: seconds of pause before each timed call: PyTorch's OpenMP workers, ONNX Runtime's pool and
#: OpenBLAS's threads spin-wait for a while after a call, and spinning beside the next library's
#: call they take the second core from it (and count in its process CPU time)
PAUSE = 0.02


def measure(case: dict, threads: int, repeats: int) -> dict:
    """Median seconds per call of Pippin, PyTorch and ONNX Runtime, interleaved round by round."""
    import scipy.linalg  # noqa: F401  (loads the BLAS numba's np.dot calls, so the limit below reaches it)
    import torch
    from threadpoolctl import threadpool_limits

    x, net, model = case["x"], case["net"], case["model"]
    x_pippin = x[:, None]  # the converted model takes one example of shape (1, ...); our batch goes first
    x_torch = torch.from_numpy(x)
    session = _ort_session(case["onnx"], threads) if case["onnx"] is not None else None
    runners = {
        "pippin": lambda: model.predict_batch({"x": x_pippin}),
        "torch": lambda: net(x_torch),
    }
    if session is not None:
        runners["onnxruntime"] = lambda: session.run(None, {"x": x})
    saved_affinity = os.sched_getaffinity(0)
    saved_torch = torch.get_num_threads()
    times = {k: [] for k in runners}
    cpu = {k: [] for k in runners}  # process CPU seconds: what a call costs whatever else the machine runs
    try:
        os.sched_setaffinity(0, sorted(saved_affinity)[:threads])
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"), torch.no_grad():
            for fn in runners.values():  # warm-up (numba compilation, BLAS buffers, ORT arenas)
                fn()
                fn()
            budget = time.perf_counter() + 60.0
            for round_ in range(repeats):
                for key, fn in runners.items():
                    time.sleep(PAUSE)
                    start, start_cpu = time.perf_counter(), time.process_time()
                    fn()
                    times[key].append(time.perf_counter() - start)
                    cpu[key].append(time.process_time() - start_cpu)
                if round_ >= 2 and time.perf_counter() > budget:
                    break
    finally:
        os.sched_setaffinity(0, saved_affinity)
        torch.set_num_threads(saved_torch)
    return {**{k: statistics.median(v) for k, v in times.items()},
            **{f"{k}_cpu": statistics.median(v) for k, v in cpu.items()}}


def max_relative_error(case: dict) -> float:
    import torch

    with torch.no_grad():
        want = case["net"](torch.from_numpy(case["x"])).numpy()
    got = np.asarray(case["model"].predict_batch({"x": case["x"][:, None]})[case["output"]]).reshape(want.shape)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))


def run(names: list[str], thread_counts: list[int], repeats: int, batch: int | None, onnx: bool) -> dict:
    rows = []
    cases = {name: prepare(name, batch, onnx=onnx) for name in names}
    errors = {name: max_relative_error(case) for name, case in cases.items()}
    # every model at one thread count before the next: threads another library left spinning after a
    # two-thread phase would otherwise run beside (and be counted in) the next model's one-thread phase
    for threads in thread_counts:
        for name, case in cases.items():
            error = errors[name]
            load = os.getloadavg()[0]
            t = measure(case, threads, repeats)
            row = {"model": name, "batch": int(case["x"].shape[0]), "threads": threads, "load": round(load, 2),
                   "pippin_ms": t["pippin"] * 1e3, "torch_ms": t["torch"] * 1e3,
                   "onnxruntime_ms": t["onnxruntime"] * 1e3 if "onnxruntime" in t else None,
                   "vs_torch": t["torch"] / t["pippin"],
                   "pippin_cpu_ms": t["pippin_cpu"] * 1e3, "torch_cpu_ms": t["torch_cpu"] * 1e3,
                   "vs_torch_cpu": t["torch_cpu"] / max(t["pippin_cpu"], 1e-9),
                   "vs_onnxruntime": t["onnxruntime"] / t["pippin"] if "onnxruntime" in t else None,
                   "max_relative_error": error, "loop_layer": "loop" in case["layers"]}
            rows.append(row)
            _print_row(row)
    summary = {}
    for threads in thread_counts:
        ratios = [r["vs_torch"] for r in rows if r["threads"] == threads]
        ort = [r["vs_onnxruntime"] for r in rows if r["threads"] == threads and r["vs_onnxruntime"]]
        summary[str(threads)] = {
            "geomean_vs_torch": math.exp(sum(map(math.log, ratios)) / len(ratios)),
            "min_vs_torch": min(ratios),
            "geomean_vs_torch_cpu": math.exp(sum(math.log(r["vs_torch_cpu"]) for r in rows if r["threads"] == threads)
                                             / len(ratios)),
            "geomean_vs_onnxruntime": math.exp(sum(map(math.log, ort)) / len(ort)) if ort else None,
        }
    return {"rows": rows, "summary": summary, "load_end": round(os.getloadavg()[0], 2)}


_HEADER = (f"{'model':<21} {'batch':>5} {'thr':>3} {'load':>5} {'pippin ms':>10} {'torch ms':>9} {'ort ms':>8} "
           f"{'vs torch':>8} {'cpu vs':>7} {'vs ort':>7} {'rel err':>8}")


def _print_row(row: dict) -> None:
    if _print_row.first:
        print(_HEADER, file=sys.stderr)
        _print_row.first = False
    ort_ms = f"{row['onnxruntime_ms']:8.2f}" if row["onnxruntime_ms"] is not None else f"{'-':>8}"
    vs_ort = f"{row['vs_onnxruntime']:6.2f}x" if row["vs_onnxruntime"] is not None else f"{'-':>7}"
    name = row["model"] + (" (loop)" if row["loop_layer"] else "")
    print(f"{name:<21} {row['batch']:>5} {row['threads']:>3} {row['load']:>5.2f} {row['pippin_ms']:>10.2f} "
          f"{row['torch_ms']:>9.2f} {ort_ms} {row['vs_torch']:>7.2f}x {row['vs_torch_cpu']:>6.2f}x {vs_ort} "
          f"{row['max_relative_error']:>8.1e}",
          file=sys.stderr, flush=True)


_print_row.first = True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO), help=f"comma-separated subset of: {', '.join(ZOO)}")
    parser.add_argument("--threads", default="1,2", help="thread counts to measure (default 1,2)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per thread count (default 7)")
    parser.add_argument("--batch", type=int, default=None, help="batch size for every model (default: per model)")
    parser.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown models {unknown}; the zoo has {list(ZOO)}")
    threads = [int(t) for t in args.threads.split(",")]
    result = run(names, threads, args.repeats, args.batch, not args.no_onnx)
    for t, s in result["summary"].items():
        ort = f", vs ONNX Runtime {s['geomean_vs_onnxruntime']:.2f}x" if s["geomean_vs_onnxruntime"] else ""
        print(f"{t} thread(s): geometric mean vs PyTorch {s['geomean_vs_torch']:.2f}x "
              f"(lowest {s['min_vs_torch']:.2f}x){ort}; in process CPU time {s['geomean_vs_torch_cpu']:.2f}x",
              file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
