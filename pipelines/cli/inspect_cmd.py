"""``pippin inspect MODEL``: show what is inside a Core ML model, as a tree or JSON.

Prints the kind, pipeline stages, inputs and outputs with types and shapes, the
specificationVersion and the OS releases it needs, updatable parts and training
inputs, layer counts by kind, class labels, item count and file size.
"""

from __future__ import annotations

from ...spec import io as spec_io
from ...spec.describe import describe, render_text
from .output import Result


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "inspect", parents=parents, help="show what is inside a .mlmodel file",
        description="Show what is inside a Core ML model (.mlmodel), as a tree or as JSON.",
        epilog="exit codes: 0 = printed, 2 = the file cannot be read (one line, no traceback). "
               "With --json the describe() keys are at the top level of the one JSON object.",
    )
    parser.add_argument("model", metavar="MODEL", help="a .mlmodel file (or an .mlpackage folder)")
    parser.set_defaults(handler=run)
    return parser


def _short(value, width: int = 72) -> str:
    text = " ".join(str(value).split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # no terminal escapes from a model
    return text if len(text) <= width else f"{text[:width - 1]}… ({len(text)} characters; --json has all)"


def metadata_text(metadata: dict | None) -> str:
    """The model's metadata as a tree: description, author, licence, version, then each userDefined key."""
    metadata = metadata or {}
    rows = [(name, metadata.get(key)) for name, key in (("description", "shortDescription"), ("author", "author"),
                                                         ("license", "license"), ("version", "versionString"))]
    rows = [(name, value) for name, value in rows if value]
    user = metadata.get("userDefined") or {}
    rows += [(key, user[key]) for key in sorted(user)]
    if not rows:
        return "metadata: none"
    lines = [f"metadata ({len(rows)})"]
    for n, (name, value) in enumerate(rows):
        lines.append(f"{'└─' if n == len(rows) - 1 else '├─'} {_short(name)}: {_short(value)}")
    return "\n".join(lines)


def run(args) -> Result:
    model = spec_io.load(args.model)
    info = describe(model, path=args.model)
    return Result(payload=info, text=render_text(info) + "\n" + metadata_text(info.get("metadata")))

