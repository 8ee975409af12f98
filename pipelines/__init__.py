"""``pippin.pipelines``: run, update, build and compose Core ML models on Linux.

Rooms (the README's "Architecture" section draws them; ``tests/test_import_rules.py``
enforces who may import whom):

- ``layers/``: one class per neural-network layer kind, in a registry;
- ``update/``: the training engine (``fit_network``, Core ML 3 ``update_network``);
- ``runtime/``: one module per model kind and ``load``;
- ``build/``: the spec builders;
- ``personalize/``: personalization and model deltas;
- ``cli/``: the ``pippin`` command and the demo.
"""

from importlib import import_module as _import_module

from .errors import PipelineError

# Imported on first use (PEP 562), so that importing a submodule (the ``pippin`` command's
# ``pippin.pipelines.cli``) does not load NumPy first: the CLI chooses BLAS threads before that.
_LAZY = {"load": ".runtime.model", "RunnableModel": ".runtime.model", "MODEL_KINDS": ".runtime.model",
         "register_kind": ".runtime.model", "KNearestNeighborsClassifier": ".build.knn",
         "Pipeline": ".build.pipeline", "PipelineClassifier": ".build.pipeline",
         "PipelineRegressor": ".build.pipeline"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["load", "RunnableModel", "MODEL_KINDS", "register_kind", "PipelineError",
           "Pipeline", "PipelineClassifier", "PipelineRegressor", "KNearestNeighborsClassifier"]
