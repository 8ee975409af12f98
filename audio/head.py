"""The classifier head over a frozen backbone, and the exported pipeline ``backbone -> head``.

The head takes one window's embedding sequence as the blob ``backboneEmbedding``
[shape=(embedding_dim, n_steps, 1)] (channels = embedding dimensions, height =
time steps: the layout the exported backbone stage gives) and is: global max and
global mean over the steps, concatenated (``2 * embedding_dim``), batchnorm (the
backbones' features differ in scale by orders of magnitude; standardising them is
what lets one learning rate serve all), ``hidden`` dense units + ReLU (none when 0),
dense ``n_classes``, softmax. A convolution over time before the pooling, hidden
units and noise on the embeddings were measured on the few-shot benchmark and
gained nothing, so the defaults have none of them.

Only the dense layers are updatable (Core ML's on-device update, as the scratch
model's head); Pippin's ``fit_network`` trains every weight once, on embeddings
computed once per clip.
"""

from __future__ import annotations

import json

from ..spec import Model
from ..spec import __version__ as PIPPIN_VERSION
from .io import RESAMPLER
from .network import LABEL_OUTPUT, PROBS_OUTPUT
from .preprocessing_spec import AUDIO_INPUT

__all__ = ["EMBEDDING_INPUT", "build_head", "head_for", "export_backbone_pipeline"]

EMBEDDING_INPUT = "backboneEmbedding"  # not "embedding": personalization names its cut network's output so


def build_head(class_labels, *, embedding_dim: int, n_steps: int, hidden: int = 0, seed: int,
               learning_rate: float, batch_size: int, epochs: int) -> Model:
    """An untrained NeuralNetworkClassifier: ``backboneEmbedding`` [embedding_dim, n_steps, 1] -> label and probabilities.

    Parameters
    ----------
    class_labels : list of str [shape=(n_classes,)]
    embedding_dim, n_steps : int
        The backbone's embedding sequence per window.
    hidden : int >= 0
        Hidden dense units (0: the pooled features go straight to the output layer).
    seed, learning_rate, batch_size, epochs
        Weight initialisation, and the update parameters written into the spec.

    Returns
    -------
    spec : pippin.spec.Model
        Spec version 4; its dense layers updatable with a categorical cross-entropy loss and Adam.
    """
    from ..pipelines.build import NetworkBuilder

    b = NetworkBuilder(inputs=[(EMBEDDING_INPUT, (embedding_dim, n_steps, 1))], outputs=[PROBS_OUTPUT],
                       mode="classifier", class_labels=[str(x) for x in class_labels],
                       predicted_feature_name=LABEL_OUTPUT, seed=seed)
    b.add_pooling("max_time", EMBEDDING_INPUT, "max_time_out", type="max", is_global=True)
    b.add_pooling("mean_time", EMBEDDING_INPUT, "mean_time_out", type="average", is_global=True)
    b.add_concat("pooled", ["max_time_out", "mean_time_out"], "pooled_out")
    b.add_batchnorm("bn_pooled", "pooled_out", "bn_pooled_out")
    x, dense = "bn_pooled_out", []
    if hidden:
        b.add_dense("dense_hidden", x, "dense_hidden_out", n_out=hidden)
        b.add_activation("relu_hidden", "dense_hidden_out", "relu_hidden_out", kind="ReLU")
        x, dense = "relu_hidden_out", ["dense_hidden"]
    b.add_dense("dense_out", x, "logits", n_out=len(class_labels))
    b.add_softmax("softmax", "logits", PROBS_OUTPUT)
    b.make_updatable(dense + ["dense_out"])
    b.set_loss("categorical_cross_entropy", input=PROBS_OUTPUT, target=LABEL_OUTPUT)
    b.set_optimizer("adam", learning_rate=learning_rate, batch_size=batch_size)
    b.set_epochs(epochs)
    b.set_shuffle(True, seed=seed)
    return b.spec


def head_for(backbone, class_labels, settings: dict, *, seed: int) -> Model:
    """``build_head`` sized for ``backbone``, with ``settings`` (``pippin.audio.defaults.DEFAULTS`` entries)."""
    n_steps, dim = backbone.sequence_shape()
    return build_head(class_labels, embedding_dim=dim, n_steps=n_steps, hidden=settings["hidden"], seed=seed,
                      learning_rate=settings["learning_rate"], batch_size=settings["batch_size"],
                      epochs=settings["epochs"])


def _backbone_stage(backbone) -> Model:
    """A ``neuralNetwork``: ``audioSamples`` [window_samples] -> ``backboneEmbedding`` [embedding_dim, n_steps, 1]."""
    from ..pipelines.build import NetworkBuilder

    b = NetworkBuilder(inputs=[(AUDIO_INPUT, (backbone.window_samples,))], outputs=[EMBEDDING_INPUT])
    backbone.add_sequence_to_network(b, AUDIO_INPUT, EMBEDDING_INPUT)
    spec = b.spec
    n_steps, dim = backbone.sequence_shape()
    out = spec.description.output[0].type.multiArrayType
    del out.shape[:]
    out.shape.extend([dim, n_steps, 1])
    spec.description.metadata.shortDescription = (
        f"Pippin '{backbone.name}' backbone, frozen: {backbone.window_samples / backbone.sample_rate:.3f} s of "
        f"{backbone.sample_rate} Hz audio -> {n_steps} x {dim} embeddings")
    spec.description.metadata.license = backbone.licence
    spec.description.metadata.author = backbone.attribution
    return spec


def export_backbone_pipeline(head: Model, backbone, *, metadata: dict) -> Model:
    """The exported model: the frozen backbone -> the trained head, as an updatable PipelineClassifier.

    Parameters
    ----------
    head : pippin.spec.Model
        The trained NeuralNetworkClassifier from ``build_head``.
    backbone : object from ``pippin.audio.backbones.get_backbone``
    metadata : dict
        Extra ``userDefined`` metadata (values JSON-encoded unless already str).

    Returns
    -------
    spec : pippin.spec.Model
        Spec version 4: stages ``backbone`` and ``classifier``; input ``audioSamples``
        [window_samples] at ``backbone.sample_rate``; outputs ``classLabel`` and
        ``classLabelProbs``; training inputs ``audioSamples`` and ``classLabel``;
        the backbone weights' licence and attribution in the metadata.
    """
    from ..pipelines.build import PipelineClassifier

    pipeline = PipelineClassifier([("backbone", _backbone_stage(backbone)), ("classifier", head)])
    pipeline.make_updatable(training_inputs=[AUDIO_INPUT, LABEL_OUTPUT])
    spec = pipeline.to_spec()
    spec.specificationVersion = 4
    meta = spec.description.metadata
    meta.shortDescription = (f"Sound classifier: the pretrained '{backbone.name}' backbone (frozen) and a small "
                             "updatable head, trained with pippin")
    meta.author = f"pippin; backbone weights: {backbone.attribution}"
    meta.license = f"backbone weights: {backbone.licence}"
    meta.versionString = PIPPIN_VERSION
    labels = [str(x) for x in head.neuralNetworkClassifier.stringClassLabels.vector]
    fields = {"labels": labels, "sample_rate": backbone.sample_rate, "window_samples": backbone.window_samples,
              "resampler": RESAMPLER, "pippin_version": PIPPIN_VERSION, "feature_extractor": backbone.name,
              "backbone.licence": backbone.licence, "backbone.attribution": backbone.attribution,
              "backbone.source": f"{backbone.metadata.get('source_package', '')} {backbone.metadata.get('source_version', '')}",
              "backbone.wheel_sha256": backbone.metadata.get("wheel_sha256", "")}
    fields.update(metadata)
    for key, value in fields.items():
        meta.userDefined[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return spec
