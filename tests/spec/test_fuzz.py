"""Robustness: mutated, truncated and spliced model files only ever raise SpecError.

At least 10,000 seeded variants of valid models (hand-built and coremltools-built) go
through ``loads``, ``validate``, ``describe`` + ``render_text``; a sample is written to
disk and run through ``load`` and the CLI's ``main`` in-process.
"""

from __future__ import annotations

import json
import random

import pytest

import pippin.spec as spec
from pippin.pipelines.cli.main import main
from pippin.spec import SpecError
from pippin.spec.describe import render_text

N_VARIANTS = 12_000
N_CLI = 150


def _seeds(valid_models, coremltools_models) -> list[bytes]:
    seeds = []
    for name, build in valid_models.items():
        model = build()
        if name == "sound_pipeline":  # keep the seed small: the weights are 18k floats
            stage = model.pipelineClassifier.pipeline.models[1].neuralNetworkClassifier
            del stage.layers[0].innerProduct.weights.floatValue[12:]
        seeds.append(model.SerializeToString())
    seeds.extend(coremltools_models.values())
    return seeds


_SCALARS = {
    "int": [0, 1, -1, 2, 3, 4, 7, 65568, 65600, 2**31 - 1, -(2**31), 15600, 96, 64],
    "float": [0.0, -1.0, 1e30, float("nan"), float("inf"), 0.5],
    "str": ["", "x", "label", "probs", "features", "audioSamples", "\u00e9\u4e2d"],
}


def _fields_of(message, out, depth=0):
    """Every (message, field) pair reachable through set sub-messages."""
    for field in message.DESCRIPTOR.fields:
        out.append((message, field))
    if depth > 12:
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for sub in (value if field.is_repeated else [value])[:4]:
            _fields_of(sub, out, depth + 1)


def _random_scalar(rng, field):
    if field.enum_type is not None:
        return rng.choice([v.number for v in field.enum_type.values] + [0, 99])
    if field.type == field.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type in (field.TYPE_STRING,):
        return rng.choice(_SCALARS["str"])
    if field.type == field.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return rng.choice(_SCALARS["float"])
    value = rng.choice(_SCALARS["int"])
    if field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_FIXED32, field.TYPE_FIXED64):
        value = abs(value)
    if field.type in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32, field.TYPE_UINT32,
                      field.TYPE_FIXED32):
        value = max(min(value, 2**31 - 1), -(2**31))
    return value


def _edit(rng: random.Random, data: bytes) -> bytes:
    """A structure-aware edit: set, clear or grow one field of a parsed seed."""
    model = spec.loads(data)
    for _ in range(rng.randint(1, 3)):
        pairs: list = []
        _fields_of(model, pairs)
        message, field = rng.choice(pairs)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        if field.is_repeated:
            items = getattr(message, field.name)
            if len(items) and rng.random() < 0.5:
                del items[rng.randrange(len(items))]
            elif field.message_type is not None:
                items.add()
            else:
                items.append(_random_scalar(rng, field))
        elif field.message_type is not None:
            if message.HasField(field.name) and rng.random() < 0.5:
                message.ClearField(field.name)
            else:
                getattr(message, field.name).SetInParent()
        else:
            setattr(message, field.name, _random_scalar(rng, field))
    return model.SerializeToString()


def _mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    op = rng.randrange(8)
    if op >= 6:
        return _edit(rng, bytes(data))
    if op == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # byte inserts
        for _ in range(rng.randint(1, 4)):
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    elif op == 2:  # byte deletes
        for _ in range(rng.randint(1, 4)):
            if data:
                del data[rng.randrange(len(data))]
    elif op == 3:  # truncation
        data = data[: rng.randrange(len(data))]
    elif op == 4:  # splice: the head of one model, the tail of another
        other = rng.choice(seeds)
        data = data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    else:  # overwrite a run with random bytes, then maybe flip a bit
        start = rng.randrange(len(data))
        for i in range(start, min(len(data), start + rng.randint(1, 16))):
            data[i] = rng.randrange(256)
    return bytes(data)


def _exercise(data: bytes) -> str:
    """Return 'rejected' or 'parsed'; any exception but SpecError propagates."""
    try:
        model = spec.loads(data, where="fuzz.mlmodel")
    except SpecError as exc:
        assert "fuzz.mlmodel" in str(exc)
        return "rejected"
    problems = spec.validate(model)
    for p in problems:
        assert isinstance(p.path, str) and p.message and p.rule
    info = spec.describe(model)
    json.dumps(info)  # JSON-ready
    render_text(info)
    return "parsed"


def test_fuzzed_models_only_raise_spec_error(valid_models, coremltools_models):
    seeds = _seeds(valid_models, coremltools_models)
    for seed in seeds:
        assert _exercise(seed) == "parsed"
    rng = random.Random(20260525)
    outcomes = {"rejected": 0, "parsed": 0}
    for i in range(N_VARIANTS):
        data = _mutate(rng, seeds)
        try:
            outcomes[_exercise(data)] += 1
        except Exception as exc:  # report the reproducer, then fail
            pytest.fail(f"variant {i} raised {type(exc).__name__}: {exc}; bytes={data.hex()}")
    # both paths were exercised in earnest
    assert outcomes["rejected"] > 1000 and outcomes["parsed"] > 1000, outcomes


def test_fuzzed_files_through_load_and_the_cli(valid_models, coremltools_models, tmp_path, capsys):
    seeds = _seeds(valid_models, coremltools_models)
    rng = random.Random(7)
    codes = {"inspect": set(), "validate": set()}
    for i in range(N_CLI):
        path = tmp_path / f"m{i}.mlmodel"
        path.write_bytes(_mutate(rng, seeds))
        try:
            spec.load(path)
        except SpecError as exc:
            assert str(path) in str(exc)
        for command in ("inspect", "validate"):
            argv = [command, str(path)] + (["--json"] if i % 2 else [])
            code = main(argv)
            out, err = capsys.readouterr()
            codes[command].add(code)
            assert code in (0, 1, 2), (argv, code)
            assert "internal error" not in err and "Traceback" not in err, (argv, err)
            if i % 2:
                obj = json.loads(out)
                assert obj["ok"] is (code == 0)
            elif code == 2:
                assert err.count("\n") == 1 and err.startswith("pippin: error: "), err
    assert {0, 2} <= codes["inspect"] and 2 in codes["validate"]
