"""Running ``linkedModel`` models: a model that refers to another ``.mlmodel`` file.

Where a link may point is decided once, in ``pippin.spec.links`` (the validator uses
the same rules): only a regular file inside the linking model's folder (or a folder
the caller of ``load`` allows with ``allowed_paths``), of bounded size, with no cycle
and a bounded depth. ``linkedModelSearchPath`` is a ``:``-separated list of folders,
each absolute or relative to the folder of the model that holds the link (empty
means ``.``); Apple's bundle placeholders (entries starting with ``$``) are skipped.
The linked file is read and built once, at load time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...spec import io as spec_io
from ...spec.errors import SpecError
from ...spec.links import check_chain, read_model_bytes
from ...spec.links import resolve_link as _resolve
from ..errors import ModelLoadError
from .model import LINK_SCOPE, RunnableModel, build, register_kind

__all__ = ["LinkedModel", "resolve_link"]


def resolve_link(spec, *, referrer: Path | None, where: str, allowed=()) -> Path:
    """The resolved path of the file a ``linkedModel`` spec refers to.

    Raises
    ------
    ModelLoadError
        The spec names no file, the file is outside the allowed folders, or no
        search-path folder holds it.
    """
    folder = referrer.parent if referrer is not None else Path.cwd()
    try:
        return _resolve(spec.linkedModel.linkedModelFile, folder=folder, allowed=allowed)
    except SpecError as exc:  # a LinkError: re-raise naming this model
        raise ModelLoadError(exc.message, where=f"{where}: {exc.where}", hint=exc.hint) from None


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
        scope = LINK_SCOPE.get() or {"allowed": (), "chain": [] if path is None else
                                     [Path(os.path.realpath(path))]}
        self.target_path = resolve_link(spec, referrer=path, where=self.where, allowed=scope["allowed"])
        where = f"{self.where}: linkedModel.linkedModelFile"
        try:
            check_chain(scope["chain"], self.target_path)
            target_spec = spec_io.loads(read_model_bytes(self.target_path), where=str(self.target_path))
        except SpecError as exc:
            raise ModelLoadError(exc.message, where=f"{where}: {exc.where}", hint=exc.hint) from None
        token = LINK_SCOPE.set({"allowed": scope["allowed"], "chain": scope["chain"] + [self.target_path]})
        try:
            self.target = build(target_spec, path=self.target_path)
        finally:
            LINK_SCOPE.reset(token)
        missing = [n for n in self.output_descriptions if n not in self.target.output_descriptions]
        if missing:
            raise ModelLoadError(
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
