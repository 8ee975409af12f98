"""The import rules of the README's architecture section, checked over every import statement.

Every ``import``/``from ... import`` in the package folders counts, including those
inside functions (lazy imports are still dependencies). Each module belongs to one
room; a room may import only the rooms listed in ``ALLOWED``, and the room graph
has no cycle. A deliberate violation (say ``from ..cli import main`` in a runtime
module) makes ``test_rooms_import_only_what_they_may`` fail naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"spec": "pippin.spec", "audio": "pippin.audio", "recommend": "pippin.recommend",
            "pipelines": "pippin.pipelines", "datasets": "pippin.datasets"}

# (module prefix, room); the longest matching prefix wins.
ROOMS = [
    ("pippin.spec", "spec"),
    ("pippin.pipelines.errors", "errors"), ("pippin.audio.errors", "errors"),
    ("pippin.recommend.errors", "errors"), ("pippin.datasets.errors", "errors"),
    ("pippin.datasets", "datasets"),
    ("pippin.audio.frontend", "frontend"),  # the one log-mel definition, shared by runtime and trainer
    ("pippin.audio.parallel", "frontend"),  # its thread-pool helper
    ("pippin.audio", "audio trainer"),
    ("pippin.recommend", "recommend trainer"),
    ("pippin.pipelines", "pipelines api"),  # the package's __init__: re-exports runtime and builders
    ("pippin.pipelines.layers", "layers"),
    ("pippin.pipelines.runtime", "runtime"),
    ("pippin.pipelines.update", "update"),
    ("pippin.pipelines.build", "build"), ("pippin.pipelines.builder", "build"),
    ("pippin.pipelines.personalize", "personalize"),
    ("pippin.pipelines.cli", "cli"),
]

BOTTOM = {"spec", "errors"}
ALLOWED = {
    "spec": set(),
    "errors": {"spec"},
    "datasets": BOTTOM,
    "frontend": BOTTOM,
    "layers": BOTTOM,
    "update": BOTTOM | {"layers"},
    "runtime": BOTTOM | {"layers", "update", "frontend"},
    "build": BOTTOM | {"layers", "runtime"},
    "pipelines api": BOTTOM | {"runtime", "build"},
    "personalize": BOTTOM | {"layers", "update", "runtime", "build", "pipelines api"},
    "audio trainer": BOTTOM | {"frontend", "datasets", "layers", "update", "runtime", "build", "pipelines api"},
    "recommend trainer": BOTTOM | {"datasets", "update", "runtime", "build", "pipelines api"},
    "cli": None,  # the application room may import everything
}


def room_of(module: str) -> str | None:
    best = None
    for prefix, room in ROOMS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, room)
    return best[1] if best else None


def module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def imports_of(path: Path):
    """Yield (line, absolute module) for every import of ours in ``path``."""
    here, is_package = module_name(path)
    package = here if is_package else here.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pippin"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pippin"):
                continue
            if node.module is None or room_of(target) == "pipelines api":
                # `from . import x` / `from pippin.pipelines import x`: x may be a submodule
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield node.lineno, sub if room_of(sub) != room_of(target) else target
            else:
                yield node.lineno, target


def source_files():
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "_proto" not in path.parts:
                yield path


def edges():
    """(from room, to room, file, line, target) for every cross-room import."""
    for path in source_files():
        here = room_of(module_name(path)[0])
        for line, target in imports_of(path):
            there = room_of(target)
            if there is not None and there != here:
                yield here, there, path.relative_to(ROOT), line, target


def test_every_module_has_a_room():
    homeless = [str(p.relative_to(ROOT)) for p in source_files() if room_of(module_name(p)[0]) is None]
    assert not homeless


def test_rooms_import_only_what_they_may():
    bad = [f"{path}:{line}: {here} imports {target} ({there})"
           for here, there, path, line, target in edges()
           if ALLOWED[here] is not None and there not in ALLOWED[here]]
    assert not bad, "\n".join(bad)


def test_room_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for here, there, *_ in edges():
        graph.setdefault(here, set()).add(there)
    state: dict[str, int] = {}

    def visit(room, trail):
        state[room] = 1
        for nxt in sorted(graph.get(room, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail + [room, nxt]))
            if nxt not in state:
                visit(nxt, trail + [room])
        state[room] = 2

    for room in sorted(graph):
        if room not in state:
            visit(room, [])


def test_spec_imports_nothing_of_ours_but_itself():
    outside = [f"{path}:{line}: {target}" for here, there, path, line, target in edges() if here == "spec"]
    assert not outside
