"""The error ``pippin.pipelines`` raises for bad user input."""

from ..spec.errors import PippinError

__all__ = ["PipelineError"]


class PipelineError(PippinError, ValueError):
    """A model could not be run, built or updated."""
