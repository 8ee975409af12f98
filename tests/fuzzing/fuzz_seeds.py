"""Seeds and mutations for ``fuzz_mutants.py``: one model of every kind Pippin writes, and
structure-aware and byte-level mutants of them (seeded ``random.Random``)."""

from __future__ import annotations

import random

import numpy as np

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
