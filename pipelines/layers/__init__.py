"""Core ML neural-network layers, one class per layer kind, in a registry.

Tensor layout (every layer refers to this)
------------------------------------------
Every blob is a NumPy array whose axis 0 is the batch: the examples of one
``predict_batch`` call (length 1 for ``predict``). float32 throughout.

- Legacy rank-5 mapping (``arrayInputShapeMapping`` = RANK5_ARRAY_MAPPING, the
  default before Core ML 3): a blob is always rank 5, ``[N, S, C, H, W]``; Core ML's
  own ``[S, B, C, H, W]`` with our batch moved first. A declared input of shape
  ``[C]`` enters as ``[N, 1, C, 1, 1]``, ``[C, H, W]`` as ``[N, 1, C, H, W]``.
- Core ML 3 exact (ND) mapping: a blob is ``[N, *shape]`` where ``shape`` is the
  example's own tensor, of rank r. A layer parameter ``axis = a`` refers to array
  axis ``a + 1`` when ``a >= 0`` and to ``a`` when negative.

``LAYERS`` maps each ``NeuralNetworkLayer.layer`` oneof member to its plain
reference class; ``OVERRIDES`` holds the faster variants registered with
``@register_fast`` (``OVERRIDE_MODULES``: ``fast.py``, ``fused.py``, ``fast_recurrent.py``,
``fast_loop.py``, ``fast_chains.py``, ``fast_softmax.py``, ``fast_arith.py``,
``fast_concat.py``, ``fast_dense.py``), which ``network.build_layers`` and
``network.fuse_layers`` use unless called with ``fast=False``.

Who builds and feeds networks: ``network.build_layers`` and ``network.array_to_blob``
are the only builder and input conversion, used by the runtime
(``pippin.pipelines.runtime``) and the training engine (``pippin.pipelines.update``)
alike. This package imports only ``pippin.spec`` and ``pippin.pipelines.errors``.
"""

import importlib as _importlib

from .base import LAYERS, OVERRIDES, Layer, LayerContext, register, register_fast

__all__ = ["LAYERS", "OVERRIDES", "Layer", "LayerContext", "register", "register_fast", "FAMILY_MODULES",
           "OVERRIDE_MODULES"]

# Modules holding layer classes, one per family; importing one registers its kinds.
FAMILY_MODULES: tuple[str, ...] = (
    # training-capable layers (helper H3's files)
    "dense", "conv", "pooling", "batchnorm", "activation", "softmax", "flatten", "concat",
    # inference-only families
    "arith", "unary", "normalization", "reduce", "shape", "slicing", "gather", "generate",
    "combine", "matmul", "resize", "recurrent", "control", "volumetric", "detection",
)

# Modules holding faster variants (``@register_fast``); imported after the families they override.
OVERRIDE_MODULES: tuple[str, ...] = ("fast", "fused", "fast_recurrent", "fast_loop", "fast_chains", "fast_softmax",
                                     "fast_arith", "fast_concat", "fast_dense")

for _name in FAMILY_MODULES + OVERRIDE_MODULES:
    _importlib.import_module(f"{__name__}.{_name}")
