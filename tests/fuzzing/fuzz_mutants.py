"""Seeded mutants of every model kind Pippin writes, run through load, validate and predict
in a forked child with a time and memory limit.

Used by ``tests/fuzzing/test_fuzz_runtime.py`` (a bounded run in the suite) and runnable
on its own for the full check of issue 12 ("How it is checked"):

    python tests/fuzzing/fuzz_mutants.py --n 6000 --seed 0 --json

Each mutant's outcome is one of:

- ``parse-rejected``: ``spec.load`` raised ``SpecError``;
- ``load-rejected``: ``validate`` found problems and ``pipelines.load`` raised a Pippin error;
- ``runtime-rejected``: ``spec.validate`` found nothing but ``pipelines.load`` or the trial
  prediction (``RunnableModel.dry_run``) refused the model with a Pippin error; ``pippin
  validate`` runs both and reports the refusal as a problem (rule ``pippin-runtime``), so
  the CLI's answer and the runtime still agree;
- ``run-ok``: validate passed, load and predict ran;
- ``tolerated-run-ok`` / ``tolerated-run-pippin-error``: validate found only problems
  ``load`` tolerates (Core ML platform rules) and predict ran or raised a Pippin error;
- ``run-no-inputs``: loaded, but no example input can be made from the description;
- failures: ``crash`` (an exception that is not a ``PippinError``, anywhere),
  ``hang`` (past the time limit), ``killed`` (a signal, e.g. the memory limit) and
  ``disagree-run`` (validate passed, load passed, predict raised a Pippin error).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

# forked children must not inherit a GNU OpenMP pool (it aborts after fork); numba's
# own workqueue layer is fork-safe
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

FAILURES = ("crash", "hang", "killed", "disagree-run")

from fuzz_seeds import build_seeds, mutate  # noqa: E402  (this folder; run as a script or by the test)

# -- one mutant, in the child ------------------------------------------------------------------


def example_inputs(model) -> dict:
    """One example per declared input, shaped as the description says."""
    out = {}
    rng = np.random.default_rng(0)
    for feature in model.description.input:
        which = feature.type.WhichOneof("Type")
        if which == "multiArrayType":
            arr = feature.type.multiArrayType
            shape = list(arr.shape)
            flex = arr.WhichOneof("ShapeFlexibility")
            if not shape and flex == "enumeratedShapes" and arr.enumeratedShapes.shapes:
                shape = list(arr.enumeratedShapes.shapes[0].shape)
            elif not shape and flex == "shapeRange":
                shape = [max(1, r.lowerBound) for r in arr.shapeRange.sizeRanges]
            if not shape or any(s <= 0 for s in shape) or np.prod(shape, dtype=float) > 1e7:
                raise _NoInputs(f"input {feature.name!r} has shape {shape}")
            out[feature.name] = rng.standard_normal(shape).astype(np.float32)
        elif which == "int64Type":
            out[feature.name] = 2
        elif which == "doubleType":
            out[feature.name] = 0.5
        elif which == "stringType":
            out[feature.name] = "a"
        elif which == "dictionaryType":
            key = feature.type.dictionaryType.WhichOneof("KeyType")
            out[feature.name] = {10: 1.0, 11: 2.0} if key == "int64KeyType" else {"10": 1.0, "11": 2.0}
        elif which == "sequenceType":
            seq = feature.type.sequenceType.WhichOneof("Type")
            out[feature.name] = [10, 11] if seq == "int64Type" else ["10", "11"]
        elif feature.type.isOptional:
            continue
        else:
            raise _NoInputs(f"input {feature.name!r} is {which}")
    return out


class _NoInputs(Exception):
    pass


def _classify(data: bytes, folder: Path) -> tuple[str, str]:
    """(outcome, detail) for one mutant; any non-Pippin exception propagates."""
    from pippin import spec
    from pippin.pipelines import load
    from pippin.spec import PippinError, SpecError

    path = folder / "mutant.mlmodel"
    path.write_bytes(data)
    try:
        model = spec.load(path)
    except SpecError:
        return "parse-rejected", ""
    problems = spec.validate(model, path=path)
    spec.describe(model)
    try:
        runnable = load(path)
        runnable.dry_run()
    except PippinError as exc:
        # `pippin validate` reports what load or the trial prediction refuses as a problem
        # (rule pippin-runtime)
        return ("load-rejected" if problems else "runtime-rejected"), f"{type(exc).__name__}: {exc}"
    try:
        inputs = example_inputs(model)
    except _NoInputs as exc:
        return "run-no-inputs", str(exc)
    try:
        runnable.predict(inputs)
    except PippinError as exc:
        if problems:
            return "tolerated-run-pippin-error", f"{type(exc).__name__}: {exc}"
        return "disagree-run", f"{type(exc).__name__}: {exc}"
    return ("tolerated-run-ok" if problems else "run-ok"), ""


def _address_space() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(data: bytes, folder: Path, memory: int, write_fd: int) -> None:
    # the limit is on what the mutant may add: the parent's imports (torch through coremltools,
    # numba) already reserve address space that the child shares copy-on-write
    limit = _address_space() + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        outcome, detail = _classify(data, folder)
    except BaseException as exc:  # noqa: BLE001 -- a crash is what we are looking for
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        outcome, detail = "crash", f"{type(exc).__name__}: {str(exc)[:200]} at {tb.filename}:{tb.lineno}"
    os.write(write_fd, json.dumps([outcome, detail[:400]]).encode())
    os.close(write_fd)
    os._exit(0)


def run_isolated(data: bytes, *, time_limit: float = 5.0, memory: int = 2 << 30) -> tuple[str, str]:
    """Run one mutant in a forked child with a time limit (seconds) and an address-space limit."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryDirectory(prefix="pippin-fuzz-") as tmp:
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(data, Path(tmp), memory, write_fd)
        os.close(write_fd)
        deadline = time.monotonic() + time_limit
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return "hang", f"over {time_limit} s"
        with os.fdopen(read_fd, "rb") as fh:
            raw = fh.read()
    if os.WIFSIGNALED(status) or not raw:
        return "killed", f"status {status}"
    outcome, detail = json.loads(raw)
    return outcome, detail


def warm_up(seeds: dict[str, bytes]) -> None:
    """Predict once with every seed in this process, so children start with compiled kernels."""
    with tempfile.TemporaryDirectory(prefix="pippin-fuzz-") as tmp:
        for name, data in seeds.items():
            outcome, detail = _classify(data, Path(tmp))
            if outcome != "run-ok":
                raise AssertionError(f"seed {name} does not run: {outcome} {detail}")


def _reason(detail: str) -> str:
    """A short category for a refusal: the message without the file, numbers and quoted names."""
    import re

    message = detail.split("mutant.mlmodel: ", 1)[-1].split(": ", 1)[-1] if ": " in detail else detail
    message = re.sub(r"'[^']*'", "'…'", message)
    return re.sub(r"-?\d+(\.\d+)?", "N", message)[:90]


def run(n: int, *, seed: int = 0, time_limit: float = 5.0, memory: int = 2 << 30, budget: float | None = None,
        log=None) -> dict:
    """Run ``n`` mutants (or as many as ``budget`` seconds allow); returns counts and failure examples."""
    seeds = build_seeds()
    warm_up(seeds)
    names = sorted(seeds)
    rng = random.Random(seed)
    counts: Counter = Counter()
    examples: dict[str, list] = {}
    reasons: Counter = Counter()
    start = time.monotonic()
    done = 0
    for i in range(n):
        if budget is not None and time.monotonic() - start > budget:
            break
        kind = names[i % len(names)]
        data = mutate(rng, [seeds[kind]])
        outcome, detail = run_isolated(data, time_limit=time_limit, memory=memory)
        counts[outcome] += 1
        done += 1
        if outcome == "runtime-rejected":  # what the runtime refuses that spec.validate accepts, by kind
            reasons[_reason(detail)] += 1
        if outcome in FAILURES and len(examples.setdefault(outcome, [])) < 20:
            examples[outcome].append({"index": i, "kind": kind, "detail": detail, "hex": data.hex()
                                      if len(data) < 4000 else None})
        if log is not None and outcome in FAILURES:
            log(f"{i} {kind} {outcome}: {detail}")
    return {"n": done, "seed": seed, "seconds": round(time.monotonic() - start, 1), "counts": dict(counts),
            "failures": sum(counts[f] for f in FAILURES), "examples": examples,
            "runtime_rejected_reasons": dict(reasons.most_common(15))}


def _show(index: int, seed: int) -> int:
    seeds = build_seeds()
    names = sorted(seeds)
    rng = random.Random(seed)
    for i in range(index + 1):
        data = mutate(rng, [seeds[names[i % len(names)]]])
    Path(f"mutant-{index}.mlmodel").write_bytes(data)
    with tempfile.TemporaryDirectory(prefix="pippin-fuzz-") as tmp:
        print(_classify(data, Path(tmp)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--memory-gb", type=float, default=2.0)
    parser.add_argument("--budget", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show", type=int, default=None, metavar="INDEX",
                        help="run mutant INDEX in this process (with a traceback) and write it to mutant-INDEX.mlmodel")
    args = parser.parse_args(argv)
    if args.show is not None:
        return _show(args.show, args.seed)
    report = run(args.n, seed=args.seed, time_limit=args.time_limit, memory=int(args.memory_gb * (1 << 30)),
                 budget=args.budget, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['n']} mutants in {report['seconds']} s: {report['counts']}; failures {report['failures']}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
