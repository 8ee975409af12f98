"""Running ``SoundAnalysisPreprocessing`` (vggish) models: 975 ms of audio -> a log-mel patch.

The numerics live in ``pippin.audio.frontend`` (pure NumPy + scipy.fft feature
code, no trainer), so the runtime and the trainer share one implementation.
"""

from __future__ import annotations

from typing import Any

from ...audio.frontend import N_MELS, PATCH_FRAMES, PATCH_SAMPLES, vggish_log_mel
from ...spec.errors import SpecError
from .features import declared_shape, feature_kind
from .model import RunnableModel, register_kind


@register_kind("soundAnalysisPreprocessing")
class SoundAnalysisPreprocessingModel(RunnableModel):
    """A loaded ``SoundAnalysisPreprocessing`` model.

    Input: one multiArray of 15,600 float samples per example (16 kHz mono).
    Output: one multiArray ``[1, 96, 64]`` per example; ``predict_batch`` gives
    ``[n_examples, 1, 96, 64]`` float32.

    Parameters
    ----------
    workers : int > 0, optional
        Threads for the front end (default: one per core).
    """

    def __init__(self, spec, *, path=None, workers: int | None = None):
        super().__init__(spec, path=path)
        self.workers = workers
        which = spec.soundAnalysisPreprocessing.WhichOneof("SoundAnalysisPreprocessingType")
        if which != "vggish":
            raise SpecError(f"preprocessing type {which!r} is not one Pippin runs (it runs: 'vggish')",
                            where=f"{self.where}: soundAnalysisPreprocessing")
        self.input_name = self._single("input", self.input_descriptions, (PATCH_SAMPLES,))
        self.output_name = self._single("output", self.output_descriptions, (1, PATCH_FRAMES, N_MELS))

    def _single(self, side: str, descriptions: dict, shape: tuple[int, ...]) -> str:
        where = f"{self.where}: description.{side}"
        if len(descriptions) != 1:
            raise SpecError(f"SoundAnalysisPreprocessing has exactly one {side}, found {len(descriptions)}",
                            where=where)
        name, description = next(iter(descriptions.items()))
        declared = declared_shape(description) if feature_kind(description) == "multiArrayType" else None
        if declared is not None and declared != shape:
            raise SpecError(f"{side} {name!r} has shape {list(declared)}, expected {list(shape)}", where=where)
        if feature_kind(description) != "multiArrayType":
            raise SpecError(f"{side} {name!r} is {feature_kind(description)}, expected multiArrayType",
                            where=where)
        return name

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {self.output_name: vggish_log_mel(inputs[self.input_name], workers=self.workers)}
