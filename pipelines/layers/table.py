"""The README table of Core ML layer kinds: every ``NeuralNetworkLayer.layer`` oneof member
and whether Pippin runs it (``python -m pippin.pipelines.layers.table`` prints it)."""

from __future__ import annotations

from ...spec._proto import NeuralNetwork_pb2
from .base import LAYERS

__all__ = ["all_layer_kinds", "layer_table"]

# Why a kind does not run (kinds not listed here and absent from LAYERS: "not implemented yet").
NOT_RUN_REASONS = {
    "custom": "custom layers run app code that is not in the model file",
}


def all_layer_kinds() -> list[str]:
    """Every member of the ``NeuralNetworkLayer.layer`` oneof, in proto field order."""
    oneof = NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"]
    return [field.name for field in oneof.fields]


def _family(cls) -> str:
    return cls.__module__.rsplit(".", 1)[-1]


def layer_table() -> str:
    """A markdown table: kind, runs (yes/no), the family module, Core ML's definition (the
    class docstring's first line) or why it does not run."""
    kinds = all_layer_kinds()
    rows = ["| # | layer kind | runs | family | definition / note |", "|---|---|---|---|---|"]
    for i, kind in enumerate(kinds, 1):
        cls = LAYERS.get(kind)
        if cls is not None:
            doc = " ".join((cls.__doc__ or "").strip().split())
            doc = doc.split(". ")[0].rstrip(".").replace("|", "\\|")
            rows.append(f"| {i} | `{kind}` | yes | `{_family(cls)}` | {doc} |")
        else:
            rows.append(f"| {i} | `{kind}` | no | | {NOT_RUN_REASONS.get(kind, 'not implemented yet')} |")
    runs = sum(kind in LAYERS for kind in kinds)
    return f"Pippin runs {runs} of the {len(kinds)} Core ML layer kinds.\n\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(layer_table())
