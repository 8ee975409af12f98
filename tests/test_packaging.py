"""Every package folder in the repo is listed in pyproject.toml, mapped under ``pippin.``."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"spec": "pippin.spec", "audio": "pippin.audio", "recommend": "pippin.recommend",
         "pipelines": "pippin.pipelines", "datasets": "pippin.datasets"}


def _package_folders():
    for folder, name in ROOTS.items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(REPO / folder)
            yield ".".join([name, *rel.parts])


def test_every_package_folder_is_listed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = sorted(set(_package_folders()) - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_package_dir_maps_each_root():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    assert mapping == {name: folder for folder, name in ROOTS.items()}


def test_test_module_basenames_are_unique():
    # pytest's default import mode puts each test folder on sys.path, so two
    # test files with one basename collide at collection.
    names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"rename these test files so their basenames are unique: {duplicates}"
