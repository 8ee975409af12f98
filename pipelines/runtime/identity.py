"""Running ``identity`` models: every output is the input of the same name.

Core ML's Identity model passes its inputs through unchanged; when an output has
no input of the same name, outputs are matched to inputs by position.
"""

from __future__ import annotations

from typing import Any

from ..errors import PipelineError
from .model import RunnableModel, register_kind

__all__ = ["IdentityModel"]


@register_kind("identity")
class IdentityModel(RunnableModel):
    """Returns its inputs as its outputs."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        inputs = list(self.input_descriptions)
        self.sources = {}
        for i, name in enumerate(self.output_descriptions):
            if name in self.input_descriptions:
                self.sources[name] = name
            elif i < len(inputs):
                self.sources[name] = inputs[i]
            else:
                raise PipelineError(f"identity output {name!r} has no matching input (inputs: {inputs})",
                                    where=self.where)

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        absent = [source for source in self.sources.values() if source not in inputs]
        if absent:  # an optional input that was not given
            raise PipelineError(f"optional input {absent[0]!r} was not given, and output "
                                f"{next(n for n, s in self.sources.items() if s == absent[0])!r} is that input",
                                where=self.where)
        return {name: inputs[source] for name, source in self.sources.items()}
