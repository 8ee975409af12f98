"""Running ``linkedModel`` models: a model that refers to another ``.mlmodel`` file.

``LinkedModelFile.linkedModelFileName`` names the file; ``linkedModelSearchPath``
is a ``:``-separated list of folders, each absolute or relative to the folder of
the model that holds the link (empty means ``.``). Apple's bundle placeholders
(entries starting with ``$``, such as ``$BUNDLE_MAIN``) have no meaning on Linux
and are skipped. The linked file is loaded once, at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PipelineError
from .model import RunnableModel, load, register_kind

__all__ = ["LinkedModel", "resolve_link"]


def resolve_link(spec, *, referrer: Path | None, where: str) -> Path:
    """The path of the file a ``linkedModel`` spec refers to.

    Raises
    ------
    PipelineError
        The spec names no file, or no search-path folder holds it.
    """
    link = spec.linkedModel.linkedModelFile
    name = link.linkedModelFileName.defaultValue
    if not name:
        raise PipelineError("linkedModel.linkedModelFile.linkedModelFileName is empty, expected a file name",
                            where=where)
    base = referrer.parent if referrer is not None else Path.cwd()
    entries = link.linkedModelSearchPath.defaultValue.split(":") or ["."]
    searched = []
    for entry in entries:
        if entry.startswith("$"):
            continue
        folder = Path(entry or ".")
        folder = folder if folder.is_absolute() else base / folder
        candidate = folder / name
        searched.append(str(folder))
        if candidate.exists():
            return candidate
    raise PipelineError(
        f"linked model file {name!r} not found (searched: {searched or ['(no usable entries)']})",
        where=where,
        hint="put the file beside the model or fix linkedModelSearchPath",
    )


@register_kind("linkedModel")
class LinkedModel(RunnableModel):
    """Runs the linked file's model under this spec's feature names.

    Attributes
    ----------
    target : RunnableModel
        The loaded linked model.
    """

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        self.target_path = resolve_link(spec, referrer=path, where=self.where)
        self.target = load(self.target_path)
        missing = [n for n in self.output_descriptions if n not in self.target.output_descriptions]
        if missing:
            raise PipelineError(
                f"linked model {self.target_path} has no output {missing[0]!r} "
                f"(it has {sorted(self.target.output_descriptions)})",
                where=self.where,
            )

    @property
    def class_labels(self):
        return getattr(self.target, "class_labels", None)

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        outputs = self.target.predict_batch(inputs)
        return {name: outputs[name] for name in self.output_descriptions}

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self._check_names(inputs)
        outputs = self.target.predict({n: v for n, v in inputs.items() if n in self.input_descriptions})
        return {name: outputs[name] for name in self.output_descriptions}
