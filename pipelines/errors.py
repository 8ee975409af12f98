"""The error ``pippin.pipelines`` raises for bad user input."""

from ..spec.errors import PippinError, SpecError

__all__ = ["PipelineError", "ModelLoadError"]


class PipelineError(PippinError, ValueError):
    """A model could not be run, built or updated."""


class ModelLoadError(SpecError, PipelineError):
    """A model ``pipelines.load`` refuses: it breaks a rule ``pippin validate`` checks, or the
    runtime cannot run it. A ``SpecError`` (and, for callers that caught the runtime's error
    before the loading boundary existed, a ``PipelineError``); reported as ``SpecError``."""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "type": "SpecError"}
