"""``pippin.pipelines``: run, update and compose Core ML models on Linux."""

from .errors import PipelineError
from .build.knn import KNearestNeighborsClassifier
from .build.pipeline import Pipeline, PipelineClassifier, PipelineRegressor
from .runtime.model import MODEL_KINDS, RunnableModel, load, register_kind

__all__ = ["load", "RunnableModel", "MODEL_KINDS", "register_kind", "PipelineError",
           "Pipeline", "PipelineClassifier", "PipelineRegressor", "KNearestNeighborsClassifier"]
