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

# -- seeds: models written by Pippin's own code ------------------------------------------------


def _sound_seed():
    from pippin.audio.network import build_network, export_pipeline

    net = build_network(["dog", "cat", "bird"], seed=0, learning_rate=1e-3, batch_size=8, epochs=2)
    return export_pipeline(net, metadata={})


def _recommender_seed():
    import pandas as pd

    from pippin.recommend import ItemSimilarityRecommender
    from pippin.recommend.export import build_spec

    table = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 3, 4], "item": [10, 11, 11, 12, 10, 12, 13, 13]})
    model = ItemSimilarityRecommender(similarity="cosine", top_k=None, threshold=0.0)
    model.fit(table, user="user", item="item")
    return build_spec(model)


def _knn_seed():
    from pippin.pipelines import KNearestNeighborsClassifier

    knn = KNearestNeighborsClassifier(n_dimensions=4, default_label="none", k=3)
    rng = np.random.default_rng(0)
    return knn.add_samples(rng.standard_normal((8, 4)), ["a", "b", "a", "c", "b", "a", "c", "c"]).to_spec()


def _nn_seed():
    """A coremltools neural network (conv, pooling, dense, softmax) when coremltools is installed."""
    try:
        from coremltools.models import datatypes
        from coremltools.models.neural_network import NeuralNetworkBuilder
    except ImportError:
        return _pippin_nn_seed()
    from pippin.spec import loads

    rng = np.random.default_rng(1)
    b = NeuralNetworkBuilder([("image", datatypes.Array(2, 8, 8))], [("probs", None)], mode="classifier")
    b.add_convolution("conv", kernel_channels=2, output_channels=3, height=3, width=3, stride_height=1,
                      stride_width=1, border_mode="same", groups=1,
                      W=rng.standard_normal((3, 3, 2, 3)).astype(np.float32), b=np.zeros(3, np.float32),
                      has_bias=True, input_name="image", output_name="c1", dilation_factors=[1, 1])
    b.add_activation("relu", "RELU", "c1", "r1")
    b.add_pooling("pool", height=2, width=2, stride_height=2, stride_width=2, layer_type="MAX",
                  padding_type="VALID", input_name="r1", output_name="p1")
    b.add_flatten("flat", mode=0, input_name="p1", output_name="f1")
    b.add_inner_product("fc", W=rng.standard_normal((3, 48)).astype(np.float32), b=np.zeros(3, np.float32),
                        input_channels=48, output_channels=3, has_bias=True, input_name="f1", output_name="logits")
    b.add_softmax("softmax", "logits", "probs")
    b.set_class_labels(["x", "y", "z"], predicted_feature_name="label", prediction_blob="probs")
    return loads(b.spec.SerializeToString())


def _pippin_nn_seed():
    from pippin.pipelines.build.network import NetworkBuilder

    b = NetworkBuilder(inputs=[("image", (2, 8, 8))], outputs=["probs"], mode="classifier",
                       class_labels=["x", "y", "z"], predicted_feature_name="label", seed=1)
    b.add_conv("conv", "image", "c1", n_out=3, kernel=(3, 3), padding="same")
    b.add_activation("relu", "c1", "r1", kind="ReLU")
    b.add_pooling("pool", "r1", "p1", type="max", kernel=(2, 2), stride=(2, 2))
    b.add_flatten("flat", "p1", "f1")
    b.add_dense("fc", "f1", "logits", n_out=3)
    b.add_softmax("softmax", "logits", "probs")
    return b.spec


SEED_BUILDERS = {"sound": _sound_seed, "recommender": _recommender_seed, "knn": _knn_seed, "nn": _nn_seed}


def build_seeds() -> dict[str, bytes]:
    """kind -> serialized seed model; each seed validates and predicts."""
    from pippin.spec import dumps

    return {name: dumps(build()) for name, build in SEED_BUILDERS.items()}


# -- mutation ------------------------------------------------------------------------------------

_INTS = [0, 1, -1, 2, 3, 7, 64, 96, 15600, 65568, 65600, 131104, 2**31 - 1, -(2**31), 2**32 - 1,
         2**40, 2**63 - 1, -(2**63)]
_FLOATS = [0.0, -1.0, 1e30, -1e30, 1e-40, float("nan"), float("inf"), float("-inf"), 0.5]
_STRINGS = ["", "x", "label", "probs", "image", "items", "k", "audioSamples", "../x.mlmodel",
            "/dev/zero", "\x1b]0;title\x07\x1b[2J", "\u00e9\u4e2d"]


def _fields_of(message, out, depth=0):
    for field in message.DESCRIPTOR.fields:
        out.append((message, field))
    if depth > 12:
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        values = value if field.is_repeated else [value]
        for sub in list(values)[:4]:
            _fields_of(sub, out, depth + 1)


def _scalar(rng: random.Random, field):
    if field.enum_type is not None:
        return rng.choice([v.number for v in field.enum_type.values] + [0, 99])
    if field.type == field.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == field.TYPE_STRING:
        return rng.choice(_STRINGS)
    if field.type == field.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(9)))
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return rng.choice(_FLOATS)
    value = rng.choice(_INTS)
    unsigned = field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_FIXED32, field.TYPE_FIXED64)
    bits = 32 if field.type in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32, field.TYPE_UINT32,
                                field.TYPE_FIXED32) else 64
    if unsigned:
        return abs(value) % (1 << bits)
    return max(min(value, 2 ** (bits - 1) - 1), -(2 ** (bits - 1)))


def _edit(rng: random.Random, data: bytes) -> bytes:
    """Set, clear, grow or shrink one to three fields of the parsed model."""
    from pippin.spec import Model

    model = Model.FromString(data)
    for _ in range(rng.randint(1, 3)):
        pairs: list = []
        _fields_of(model, pairs)
        message, field = rng.choice(pairs)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        try:
            if field.is_repeated:
                items = getattr(message, field.name)
                if len(items) and rng.random() < 0.5:
                    del items[rng.randrange(len(items))]
                elif field.message_type is not None:
                    items.add()
                else:
                    items.append(_scalar(rng, field))
            elif field.message_type is not None:
                if message.HasField(field.name) and rng.random() < 0.5:
                    message.ClearField(field.name)
                else:
                    getattr(message, field.name).SetInParent()
            else:
                setattr(message, field.name, _scalar(rng, field))
        except (ValueError, TypeError):
            continue
    return model.SerializeToString()


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One mutant: a structure-aware edit (most often) or a byte-level change."""
    data = bytearray(rng.choice(seeds))
    op = rng.randrange(10)
    if op >= 4:
        return _edit(rng, bytes(data))
    if op == 0:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        for _ in range(rng.randint(1, 4)):
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    elif op == 2:
        data = data[: rng.randrange(len(data))]
    else:
        other = rng.choice(seeds)
        data = data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    return bytes(data)


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
