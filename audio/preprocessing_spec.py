"""Building the ``SoundAnalysisPreprocessing`` (vggish) model spec.

The model takes 975 ms of 16 kHz mono audio (``audioSamples``, FLOAT32 [15600])
and gives its log-mel patch (FLOAT32 [1, 96, 64]); ``pippin.audio.frontend``
holds the numerics and ``pippin.pipelines.runtime.sound_analysis`` runs it.
"""

from __future__ import annotations

from ..spec import Model
from ..spec._proto import FeatureTypes_pb2
from .frontend import N_MELS, PATCH_FRAMES, PATCH_SAMPLES

__all__ = ["AUDIO_INPUT", "PATCH_OUTPUT", "SPEC_VERSION", "add_array_feature", "preprocessing_spec"]

AUDIO_INPUT = "audioSamples"
PATCH_OUTPUT = "preprocessedAudio"
# Core ML 3 (iOS 13 / macOS 10.15) introduced SoundAnalysisPreprocessing: specification version 4.
SPEC_VERSION = 4


def add_array_feature(features, name: str, shape: tuple[int, ...], *, description: str = "") -> None:
    """Append a FLOAT32 multiArray ``FeatureDescription`` to a repeated field of a ModelDescription."""
    feature = features.add()
    feature.name = name
    if description:
        feature.shortDescription = description
    array = feature.type.multiArrayType
    array.shape.extend(int(d) for d in shape)
    array.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32


def preprocessing_spec(*, input_name: str = AUDIO_INPUT, output_name: str = PATCH_OUTPUT) -> Model:
    """A spec-v4 ``SoundAnalysisPreprocessing`` (vggish) model.

    Parameters
    ----------
    input_name : str
        The audio input's name: FLOAT32 [shape=(15600,)].
    output_name : str
        The patch output's name: FLOAT32 [shape=(1, 96, 64)].

    Returns
    -------
    spec : pippin.spec.Model
    """
    spec = Model()
    spec.specificationVersion = SPEC_VERSION
    add_array_feature(spec.description.input, input_name, (PATCH_SAMPLES,),
                      description="975 ms of 16 kHz mono audio, samples in [-1, 1)")
    add_array_feature(spec.description.output, output_name, (1, PATCH_FRAMES, N_MELS),
                      description="VGGish log-mel patch: ln(mel + 0.01), 96 frames x 64 bands")
    spec.soundAnalysisPreprocessing.vggish.SetInParent()
    return spec
