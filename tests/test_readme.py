"""The README's test command is the one CI runs."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _bash_blocks(text):
    blocks, inside = [], None
    for line in text.splitlines():
        if line.strip() == "```bash":
            inside = []
        elif line.strip() == "```" and inside is not None:
            blocks.append("\n".join(inside).strip())
            inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def test_ci_runs_the_readme_test_command():
    test_command = _bash_blocks((REPO / "README.md").read_text())[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci], f"{test_command!r} not in .ci/run"


def test_layer_table_is_current():
    from pippin.pipelines.layers.table import layer_table

    readme = (REPO / "README.md").read_text()
    assert layer_table().strip() in readme, "regenerate the layer table: python -m pippin.pipelines.layers.table"


def test_every_room_of_the_architecture_section_exists():
    import re

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Architecture"):]
    rooms = set(re.findall(r"^\| `([a-z_]+/)` \|", section, flags=re.M))
    assert {"spec/", "audio/", "layers/", "update/", "runtime/", "build/", "personalize/", "cli/"} <= rooms
    for room in rooms:  # a room of pipelines/ first: the top level may hold setuptools' build/ folder
        folder = REPO / "pipelines" / room if (REPO / "pipelines" / room).is_dir() else REPO / room
        assert folder.is_dir() and (folder / "__init__.py").exists(), room
