"""Regenerate ``spec/_proto/*_pb2.py`` from ``spec/proto/*.proto``.

Run ``python -m pippin.spec.regenerate`` (or ``python spec/regenerate.py``) after
editing a ``.proto`` file. Needs the ``dev`` extra (``grpcio-tools``, pinned, so
the output is byte-stable and ``tests/spec/test_generated.py`` can check that the
committed modules are fresh).

protoc's output is rewritten in two ways:
- imports of sibling modules become relative (``from . import X_pb2``), so the
  modules live inside ``pippin.spec._proto`` instead of at top level;
- descriptors go into our private pool (see ``_pool.py``), not the default one.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE / "proto"
OUT_DIR = HERE / "_proto"

_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
_DEFAULT_POOL = "_descriptor_pool.Default()"


def _rewrite(source: str) -> str:
    """Make one protoc-generated module relative and bound to our pool."""
    source = _SIBLING_IMPORT.sub(r"from . import \1 as \2", source)
    if _DEFAULT_POOL not in source:
        raise RuntimeError("protoc output changed shape: no default pool call to replace")
    source = source.replace(_DEFAULT_POOL, "_POOL")
    source = source.replace(
        "# @@protoc_insertion_point(imports)",
        "from ._pool import POOL as _POOL\n# @@protoc_insertion_point(imports)",
        1,
    )
    # `from X_pb2 import *` (public imports) must become relative too.
    source = re.sub(r"^from (\w+_pb2) import \*$", r"from .\1 import *", source, flags=re.MULTILINE)
    return source


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every ``.proto`` and write rewritten modules to ``out_dir``."""
    from grpc_tools import protoc  # dev extra only

    protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as raw:
        include = Path(protoc.__file__).resolve().parent / "_proto"
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={raw}", *protos]
        code = protoc.main(args)
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for module in sorted(Path(raw).glob("*_pb2.py")):
            target = out_dir / module.name
            target.write_text(_rewrite(module.read_text()))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
