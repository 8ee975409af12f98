"""The CLI loads only the named command's module, so short commands do not pay for every command's imports."""

import subprocess
import sys

import pytest

from pippin.pipelines.cli.main import COMMAND_MODULES, _wanted, build_parser

PROBE = """
import sys
from pippin.pipelines.cli.main import build_parser
build_parser({argv!r}, lazy=True)
print(sorted(m for m in ("pippin.recommend", "flwr", "pandas") if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["update", "m.mlmodel", "data.csv"], ["personalize", "m.mlmodel", "new", "--head"],
                                  ["train", "sound", "data", "-o", "m.mlmodel"]])
def test_a_command_loads_only_its_module(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout  # no recommender, Flower or pandas for these commands


def test_words_pick_the_module_and_unknown_words_build_everything():
    assert _wanted(["train", "sound", "x", "-o", "y"]) == ("train", "sound")
    assert _wanted(["--json", "update", "m", "d"]) == ("update", "m")
    assert _wanted(["--help"]) is None and _wanted(["nonsense"]) is None and _wanted([]) is None
    full = build_parser()
    lazy = build_parser(["update", "m.mlmodel", "d.csv"], lazy=True)
    commands = lambda p: set(next(a for a in p._actions if a.dest == "command").choices)
    assert len(commands(full)) == len(COMMAND_MODULES) and commands(lazy) == {"update"}
    args = lazy.parse_args(["update", "m.mlmodel", "d.csv", "-o", "out.mlmodel"])
    assert args.command == "update" and args.handler is not None
