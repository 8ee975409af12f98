"""``Problem`` (one broken rule at one field path) and the collector validators fill."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "Report", "feature_type_name", "layer_path", "article"]


@dataclass(frozen=True)
class Problem:
    """One rule a model breaks.

    Attributes
    ----------
    path : str
        Field path inside the model, in the format's own spelling, e.g.
        ``"neuralNetworkClassifier.layers[3](conv1).innerProduct.weights"`` or
        ``"description.output[0]"``; nested pipeline stages are prefixed with
        ``"pipeline.models[1]."``.
    message : str
        What was found and what was expected; one sentence, no trailing period.
    rule : str
        A short kebab-case id of the rule (``"pipeline-chain"``, ``"spec-version"``, ...).
    """

    path: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_dict(self) -> dict:
        return {"path": self.path, "message": self.message, "rule": self.rule}


class Report:
    """Collects problems; ``at(prefix)`` gives a view that prefixes every path."""

    def __init__(self, problems: list[Problem] | None = None, prefix: str = "", context: dict | None = None):
        self.problems = [] if problems is None else problems
        self.prefix = prefix
        #: what rules that look outside the spec may need (``links``: the linking model's folder,
        #: the allowed search paths and the chain of linked files); shared by every view
        self.context = {} if context is None else context

    def at(self, sub: str) -> "Report":
        return Report(self.problems, self.join(sub), self.context)

    def join(self, sub: str) -> str:
        if not sub:
            return self.prefix
        if not self.prefix:
            return sub
        return f"{self.prefix}.{sub}"

    def add(self, path: str, message: str, rule: str) -> None:
        self.problems.append(Problem(self.join(path), message, rule))


def feature_type_name(feature_type) -> str:
    """The ``FeatureType`` oneof member a feature uses, or ``"unset"``."""
    return feature_type.WhichOneof("Type") or "unset"


def layer_path(field: str, index: int, layer) -> str:
    """``layers[3](conv1)``: a layer's position and name."""
    return f"{field}[{index}]({layer.name})"


def article(word: str) -> str:
    """``"an"`` before a vowel, else ``"a"``: ``f"{article(kind)} {kind} model"``."""
    return "an" if str(word)[:1].lower() in "aeiou" else "a"
