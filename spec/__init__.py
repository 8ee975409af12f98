"""``pippin.spec``: the Core ML model format, read, written, checked and described.

``Model`` is the generated class of ``CoreML.Specification.Model``; the other
generated modules are reachable as ``pippin.spec.proto.<Name>_pb2``. This package
imports nothing else of Pippin's.
"""

from importlib import metadata as _metadata

from ._proto import (
    DataStructures_pb2,
    FeatureTypes_pb2,
    ItemSimilarityRecommender_pb2,
    LinkedModel_pb2,
    Model_pb2,
    NearestNeighbors_pb2,
    NeuralNetwork_pb2,
    SoundAnalysisPreprocessing_pb2,
)
from ._proto import Model_pb2 as _model_pb2
from .errors import PippinError, SpecError
from .io import dumps, load, loads, save
from .describe import describe
from .validate import Problem, validate

Model = _model_pb2.Model
proto = __import__(__name__ + "._proto", fromlist=["_proto"])

try:
    __version__ = _metadata.version("pippin")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Model",
    "PippinError",
    "SpecError",
    "load",
    "save",
    "loads",
    "dumps",
    "validate",
    "Problem",
    "describe",
    "proto",
    "DataStructures_pb2",
    "FeatureTypes_pb2",
    "ItemSimilarityRecommender_pb2",
    "LinkedModel_pb2",
    "Model_pb2",
    "NearestNeighbors_pb2",
    "NeuralNetwork_pb2",
    "SoundAnalysisPreprocessing_pb2",
    "__version__",
]
