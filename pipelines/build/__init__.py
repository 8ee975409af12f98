"""Builders: write Core ML specs from Python (neural networks, k-NN classifiers, pipelines).

- ``network.NetworkBuilder``: layers, classifier labels, update settings.
- ``knn.KNearestNeighborsClassifier``: an (updatable) k-NN classifier spec.
- ``pipeline.Pipeline`` / ``PipelineClassifier`` / ``PipelineRegressor``: chain stages.

Each builder keeps its spec in ``.spec`` and shares ``model()``/``save()`` through
``base.SpecBuilder``. Trainers (``pippin.audio``, ``pippin.recommend``) call these;
builders import only ``pippin.spec`` and, to check a finished spec, the runtime.
"""

from .knn import KNearestNeighborsClassifier
from .network import NetworkBuilder
from .pipeline import Pipeline, PipelineClassifier, PipelineRegressor, as_spec

__all__ = ["NetworkBuilder", "KNearestNeighborsClassifier", "Pipeline", "PipelineClassifier", "PipelineRegressor",
           "as_spec"]
