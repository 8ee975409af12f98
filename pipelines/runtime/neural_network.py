"""Running Core ML neural networks (plain, classifier, regressor) over whole batches.

``NeuralNetworkModel`` builds every layer once at load (``.layers``, spec order) and
``predict_batch`` is then ``from_blobs(run_layers(to_blobs(inputs)))``: one
vectorized pass, every blob carrying the batch on axis 0 (layout: the
``pipelines.layers`` package docstring). The training engine
(``pipelines.update``) reuses ``to_blobs``/``run_layers``/``from_blobs``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ._malloc import keep_freed_memory
from .features import feature_kind
from ..layers import Layer
from ..layers import network as _network
from ..layers._blas import blas_libraries
from ..layers.network import array_to_blob
from .nn_inputs import blob_to_output, images_to_blob, output_facts, preprocess
from .model import RunnableModel, register_kind

__all__ = ["NeuralNetworkModel"]

RANK4_IMAGE_MAPPING = 1
#: multiply-adds a batch must take before ``predict_batch`` runs it in parts, one per core, or lets
#: BLAS use more than one thread (about 2 ms on one core: below that a hand-off costs more than it saves)
SPLIT_MIN_WORK = 50_000_000


@contextmanager
def _one_blas_thread():
    """BLAS on one thread inside the block (threadpoolctl's per-library setters: microseconds,
    where its ``limit`` context takes about 80 us); the previous counts are restored after."""
    libs = [(lib, n) for lib in blas_libraries() if (n := lib.get_num_threads()) != 1]  # set only what differs
    for lib, _ in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in libs:
            lib.set_num_threads(n)


def _work(layers: list, blobs: dict[str, np.ndarray]) -> float:
    """Multiply-adds a run of ``layers`` did, estimated from their outputs: a weighted layer
    costs its weights per output channel for each output value, any other one value per value."""
    total = 0.0
    for layer in layers:
        base = getattr(layer, "conv", layer)
        weights = getattr(base, "params", {}).get("weights")
        per_value = weights.size / max(weights.shape[0], 1) if weights is not None and weights.ndim else 1.0
        total += sum(blobs[name].size * per_value for name in layer.outputs if name in blobs)
    return total


@register_kind("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
class NeuralNetworkModel(RunnableModel):
    """A loaded Core ML neural network, ready to predict on batches.

    Attributes
    ----------
    network : NeuralNetwork | NeuralNetworkClassifier | NeuralNetworkRegressor
        The proto message of the network.
    layers : list of Layer
        One built layer per spec layer, in spec order.
    exact_shapes : bool
        True under Core ML 3's exact (ND) array shape mapping, False under rank-5.
    fast : bool
        Whether the layers use their registered faster variants (``pipelines.layers.OVERRIDES``):
        per layer, and fused runs of layers when a batch runs in parts. False runs the plain
        reference classes only.
    class_labels : np.ndarray [shape=(n_classes,)] or None
        A classifier's labels (str objects or int64), in probability column order.
    """

    _split_ok: bool | None = None  # whether predict_batch may run the batch in parts (see run_layers_split)
    _inference: tuple | None = None  # (self.layers it was made from, layers predict runs, blobs kept)
    _optional_inputs: tuple | None = None  # names of the optional inputs (see _predict_batch)
    _outputs: tuple | None = None  # the declared outputs as plain values (see from_blobs)
    _input_kinds: dict | None = None  # input name -> feature kind (see to_blobs)

    def __init__(self, spec: Model, *, path: Path | None = None, fast: bool = True):
        super().__init__(spec, path=path)
        keep_freed_memory()  # layer outputs reuse freed heap memory instead of fresh pages (see _malloc)
        self.fast = fast
        self.network = getattr(spec, self.kind)
        self.exact_shapes = _network.uses_exact_shapes(self.network)
        self.rank4_images = self.network.imageInputShapeMapping == RANK4_IMAGE_MAPPING
        self.prefix = f"{self.where}: {self.kind}"
        self.layers: list[Layer] = _network.build_layers(
            self.network.layers,
            prefix=self.prefix,
            exact_shapes=self.exact_shapes,
            spec_version=int(spec.specificationVersion),
            fast=fast,
        )
        self.class_labels = self._read_labels()
        self._batch_work: dict[tuple, float] = {}  # input shapes -> multiply-adds of one run (see _predict_batch)
        self.probability_blob = self._probability_blob()

    # -- classifier facts ---------------------------------------------------
    @property
    def is_classifier(self) -> bool:
        return self.kind == "neuralNetworkClassifier"

    def _read_labels(self) -> np.ndarray | None:
        if not self.is_classifier:
            return None
        which = self.network.WhichOneof("ClassLabels")
        if which == "stringClassLabels":
            return np.array(list(self.network.stringClassLabels.vector), dtype=object)
        if which == "int64ClassLabels":
            return np.array(list(self.network.int64ClassLabels.vector), dtype=np.int64)
        raise PipelineError("the classifier declares no class labels", where=f"{self.prefix}.ClassLabels")

    def _probability_blob(self) -> str | None:
        if not self.is_classifier:
            return None
        if self.network.labelProbabilityLayerName:
            return self.network.labelProbabilityLayerName
        if not self.layers:
            raise PipelineError("the classifier has no layers", where=self.prefix)
        return self.layers[-1].outputs[0]

    # -- the three stages ---------------------------------------------------
    def to_blobs(self, batch_inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Declared model inputs (batch values) -> blobs of the internal layout.

        Parameters
        ----------
        batch_inputs : dict
            Feature name -> batch value (see ``pipelines.features``): multi-arrays
            [shape=(n_examples, *shape)], images as uint8 [shape=(n_examples, H, W[, 3])]
            or lists of arrays / PIL images.

        Returns
        -------
        blobs : dict of str -> np.ndarray [shape=(n_examples, ...)], float32
        """
        blobs: dict[str, np.ndarray] = {}
        if self._input_kinds is None:  # protobuf reads cost microseconds per call: once per model
            self._input_kinds = {n: feature_kind(d) for n, d in self.input_descriptions.items()}
        for name, value in batch_inputs.items():
            kind = self._input_kinds.get(name)
            if kind is None:
                continue
            description = self.input_descriptions[name]
            where = f"{self.where}: input {name!r}"
            if kind == "imageType":
                blob = images_to_blob(description, value, rank4=self.rank4_images, where=where)
                blobs[name] = self._preprocess(name, blob, description)
            elif kind == "multiArrayType":
                blobs[name] = array_to_blob(name, value, exact_shapes=self.exact_shapes, where=where)
            elif kind in ("doubleType", "int64Type"):
                column = np.asarray(value, dtype=np.float32).reshape(-1, 1)
                blobs[name] = column if self.exact_shapes else column.reshape(-1, 1, 1, 1, 1)
            else:
                raise PipelineError(f"input {name!r} is a {kind[:-4]}, which a neural network cannot take",
                                    where=self.where)
        return blobs

    def _preprocess(self, name: str, blob: np.ndarray, description: Any) -> np.ndarray:
        n_images = sum(feature_kind(d) == "imageType" for d in self.input_descriptions.values())
        for index, step in enumerate(self.network.preprocessing):
            if step.featureName == name or (not step.featureName and n_images == 1):
                blob = preprocess(blob, step, color_space=description.type.imageType.colorSpace,
                                  where=f"{self.prefix}.preprocessing[{index}]")
        return blob

    def run_layers(self, blobs: dict[str, np.ndarray], *, layers: list[Layer] | None = None) -> dict[str, np.ndarray]:
        """Run ``layers`` (default: all) in order over ``blobs``; returns the dict with every output added.

        Raises ``PipelineError`` naming the layer, the missing blob and the blobs present.
        """
        optional = {name for name, d in self.input_descriptions.items() if d.type.isOptional and name not in blobs}
        return _network.run_layers(self.layers if layers is None else layers, dict(blobs), optional=optional)

    def from_blobs(self, blobs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Blobs -> every declared output as a batch value.

        A classifier's ``predictedFeatureName`` is the label array [shape=(n_examples,)]
        and its ``predictedProbabilitiesName`` the probabilities
        [shape=(n_examples, n_classes)] in label order.
        """
        outputs: dict[str, Any] = {}
        for name, role, out, facts in self._output_plan():
            if role == "label":
                outputs[name] = self.class_labels[np.argmax(self._probabilities(blobs), axis=1)]
            elif role == "probabilities":
                outputs[name] = self._probabilities(blobs)
            elif name in blobs:
                outputs[name] = blob_to_output(out, blobs[name], exact_shapes=self.exact_shapes, facts=facts)
            else:
                raise PipelineError(
                    f"output {name!r} is not produced by any layer; blobs present: {sorted(blobs)}", where=self.where
                )
        return outputs

    def _output_plan(self) -> tuple:
        """Per declared output ``(name, role, description, output_facts)``, read from the spec once."""
        if self._outputs is None:
            description, plan = self.spec.description, []
            for name, out in self.output_descriptions.items():
                if self.is_classifier and name == description.predictedFeatureName:
                    plan.append((name, "label", out, None))
                elif self.is_classifier and name == description.predictedProbabilitiesName:
                    plan.append((name, "probabilities", out, None))
                else:
                    plan.append((name, "blob", out, output_facts(out)))
            self._outputs = tuple(plan)
        return self._outputs

    def _probabilities(self, blobs: dict[str, np.ndarray]) -> np.ndarray:
        blob = blobs.get(self.probability_blob)
        if blob is None:
            raise PipelineError(f"probability blob {self.probability_blob!r} was not produced",
                                where=f"{self.prefix}.labelProbabilityLayerName")
        probabilities = blob.reshape(blob.shape[0], -1)
        if probabilities.shape[1] != len(self.class_labels):
            raise PipelineError(
                f"blob {self.probability_blob!r} holds {probabilities.shape[1]} values per example, "
                f"expected one per class label ({len(self.class_labels)})",
                where=f"{self.prefix}.labelProbabilityLayerName",
            )
        return probabilities

    # -- RunnableModel ------------------------------------------------------
    def _inference_layers(self) -> tuple[list, set]:
        """The layers predict runs (fused runs of layers when ``fast``) and the blobs it must keep."""
        if self._inference is None or self._inference[0] is not self.layers:
            keep = set(self.output_descriptions)
            if self.is_classifier:
                keep.add(self.probability_blob)
            nested = any(getattr(layer, "controls_flow", False) for layer in self.layers)
            # nested networks read blobs fuse_layers does not count: no fusing around control flow
            layers = _network.fuse_layers(self.layers, keep) if self.fast and not nested else self.layers
            self._inference = (self.layers, layers, keep)
        return self._inference[1], self._inference[2]

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run the batch whole, in parts (one per core) when it is heavy, with one BLAS thread when it is light.

        Splitting costs a thread hand-off per part and a BLAS call on two threads a hand-off per
        call (each milliseconds on a loaded machine, against well under a millisecond of work in a
        small product), so both only pay for heavy batches: decided once per input shape from the
        work the first run did (``SPLIT_MIN_WORK`` multiply-adds).
        """
        blobs = self.to_blobs(inputs)
        layers, keep = self._inference_layers()
        if self._optional_inputs is None:  # protobuf reads cost microseconds per call: once per model
            self._optional_inputs = tuple(n for n, d in self.input_descriptions.items() if d.type.isOptional)
        optional = {name for name in self._optional_inputs if name not in blobs}
        key = tuple((name, v.shape) for name, v in blobs.items() if v is not None)
        work = self._batch_work.get(key)
        if work is None:
            out = _network.run_layers(layers, dict(blobs), optional=optional)
            self._batch_work[key] = _work(layers, out)
            return self.from_blobs(out)
        if work < SPLIT_MIN_WORK:
            with _one_blas_thread():
                return self.from_blobs(_network.run_layers(layers, dict(blobs), optional=optional, keep=keep))
        if self._split_ok is None:
            self._split_ok = _network.splittable(self.layers)
        if self._split_ok:
            # each part carries at least half the threshold's work: images (a batch of 4 ResNets) split
            # into single examples, a batch of light examples into parts of several
            n = max((v.shape[0] for v in blobs.values() if v is not None), default=1)
            min_part = max(1, math.ceil(SPLIT_MIN_WORK / 2 / max(work / n, 1.0)))
            return self.from_blobs(_network.run_layers_split(layers, dict(blobs), keep=keep, optional=optional,
                                                             min_part=min_part))
        return self.from_blobs(_network.run_layers(layers, dict(blobs), optional=optional, keep=keep))

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict one example; a classifier's probabilities come back as ``{label: probability}``."""
        result = super().predict(inputs)
        name = self.spec.description.predictedProbabilitiesName
        if self.is_classifier and name in result:
            result[name] = {label: float(p) for label, p in zip(self.class_labels.tolist(), result[name])}
        return result

    def update(self, training_data: dict[str, Any], *, epochs: int | None = None, progress=None,
               **parameter_overrides) -> "NeuralNetworkModel":
        """Train the layers the spec marks updatable, with Core ML 3's semantics; returns a new model.

        See ``pippin.pipelines.update.update_network`` for the arguments.
        """
        from ..update import update_network  # the update engine builds on this module

        return update_network(self, training_data, epochs=epochs, progress=progress, **parameter_overrides)
