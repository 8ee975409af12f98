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

from .errors import PipelineError
from .build.knn import KNearestNeighborsClassifier
from .build.pipeline import Pipeline, PipelineClassifier, PipelineRegressor
from .runtime.model import MODEL_KINDS, RunnableModel, load, register_kind

__all__ = ["load", "RunnableModel", "MODEL_KINDS", "register_kind", "PipelineError",
           "Pipeline", "PipelineClassifier", "PipelineRegressor", "KNearestNeighborsClassifier"]
