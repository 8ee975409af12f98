"""Every ```python and ```bash block of the README runs (issue 13 item 5), so an example cannot drift from the API.

All blocks run in README order in one working folder, and the python blocks in one
namespace, as a reader following the README in one session would. Before a block runs, ``SETUP`` makes the files it names but does not create (a
``sounds/`` folder, ``ratings.csv``, ...), from Pippin's generated demo data. ``pippin``
lines run through ``pippin.pipelines.cli.main`` in this process and must exit 0.

Substitutions, each stated and each checked to still match the README text:
- ``SUBSTITUTIONS`` shrinks data and epochs where the example as written would take
  minutes (small data, short training); nothing else in a block changes.
- ``../shared/datasets/movielens-100k`` is the shared dataset's real location (the test
  runs in a temporary folder); without it the test skips (fails under PIPPIN_REQUIRE_SHARED=1).
- ``NOT_RUN`` lists the commands a block shows that are not Pippin examples: installing
  the package and running this very test suite (.ci/run runs that command,
  tests/test_readme.py checks it) and ``pippin demo`` (tests/cli/test_demo_cli.py runs it).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# (the README's text, what runs instead): checked to match the README
SUBSTITUTIONS = {
    "make_demo_sounds(\"demo-sounds/\")": "make_demo_sounds(\"demo-sounds/\", clips_per_kind=3, seconds=1.0)",
    "pippin train sound sounds/ -o sounds.mlmodel ": "pippin train sound sounds/ -o sounds.mlmodel --epochs 3 ",
    "pippin train sound drums/ -o drums.mlmodel --feature-extractor sounds ":
        "pippin train sound drums/ -o drums.mlmodel --feature-extractor sounds --epochs 3 ",
    "pippin train sound words/ -o words.mlmodel --feature-extractor speech ":
        "pippin train sound words/ -o words.mlmodel --feature-extractor speech --epochs 3 ",
    "SoundClassifier(feature_extractor=\"speech\", random_state=0)":
        "SoundClassifier(feature_extractor=\"speech\", random_state=0, epochs=3)",
    "ids, scores = model.recommend(model.user_ids_[:1000], k=10)":
        "ids, scores = model.recommend(model.user_ids_[:100], k=10)",
}
NOT_RUN = {"pip install .", "pip install \".[test]\"", "python -m pytest -n 2", "pippin demo",
           "pip install \"pippin[spark]\""}


def _blocks():
    text = (REPO / "README.md").read_text()
    found = re.findall(r"^```(python|bash)\n(.*?)^```", text, flags=re.M | re.S)
    return [(n, lang, body) for n, (lang, body) in enumerate(found)]


BLOCKS = _blocks()


def _substitute(body: str) -> str:
    for old, new in SUBSTITUTIONS.items():
        body = body.replace(old, new)
    return body


def test_every_substitution_still_matches_the_readme():
    text = (REPO / "README.md").read_text()
    stale = [old for old in SUBSTITUTIONS if old not in text]
    assert not stale, f"README changed; update SUBSTITUTIONS: {stale}"


# -- files the examples name ----------------------------------------------------------------------------------
def _sound_folder(root: Path, kinds, *, clips=3, seed=0, rename=None):
    from pippin.datasets import make_demo_sounds

    tmp = root.parent / f".gen-{root.name}"
    make_demo_sounds(tmp, clips_per_kind=clips, seconds=1.0, seed=seed)
    for kind in kinds:
        (root / (rename or {}).get(kind, kind)).mkdir(parents=True, exist_ok=True)
        for path in sorted((tmp / kind).glob("*.wav")):
            shutil.copy(path, root / (rename or {}).get(kind, kind) / path.name)
    shutil.rmtree(tmp)


def _setup_sound_cli(work: Path):
    import soundfile as sf

    _sound_folder(work / "sounds", ["tone", "hum", "noise"], seed=1)
    _sound_folder(work / "test", ["tone", "hum", "noise"], clips=2, seed=2)
    shutil.copy(work / "test" / "tone" / "tone_0.wav", work / "dog.wav")
    samples, rate = sf.read(work / "test" / "hum" / "hum_0.wav")
    sf.write(work / "street.flac", samples, rate)


def _setup_backbones(work: Path):
    _sound_folder(work / "drums", ["clicks", "noise"], seed=3, rename={"clicks": "snare", "noise": "hi-hat"})
    _sound_folder(work / "words", ["tone", "chirp"], clips=5, seed=4, rename={"tone": "yes", "chirp": "no"})
    _sound_folder(work / "my-words", ["hum"], clips=5, seed=5, rename={"hum": "maybe"})


def _setup_recommender_cli(work: Path):
    from pippin.datasets import make_demo_interactions
    from pippin.recommend import random_holdout

    table = make_demo_interactions(n_users=120, n_items=200, seed=6)[["user_id", "item_id", "rating"]]
    table["item_id"] = table["item_id"].str[-3:].astype(int) + 1  # MovieLens-like integer ids 1..200
    table.to_csv(work / "ratings.csv", index=False)
    train, test = random_holdout(table, user="user_id", seed=0)
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    train[train["user_id"].isin(train["user_id"].unique()[:10])].to_csv(work / "history.csv", index=False)
    table.assign(ts=0).to_csv(work / "u.data", sep="\t", header=False, index=False)


def _setup_spark(work: Path):
    import pandas as pd

    pd.read_csv(work / "ratings.csv").to_parquet(work / "ratings.parquet")
    pd.read_csv(work / "history.csv").to_parquet(work / "histories.parquet")


def _setup_spark_sound(work: Path):
    import pandas as pd

    files = sorted((work / "words").glob("*/*.wav"))  # made by _setup_backbones
    pd.DataFrame({"path": [str(f) for f in files], "label": [f.parent.name for f in files]}).to_csv(
        work / "labels.csv", index=False)


def _classifier():
    from pippin.pipelines.build import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier",
                       class_labels=["cat", "dog", "owl"], seed=0)
    b.add_dense("fc1", "x", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    return b


def _setup_running(work: Path):
    _classifier().save(work / "MyClassifier.mlmodel")


def _setup_knn(work: Path):
    from pippin.pipelines.build import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["features"], seed=0)
    b.add_dense("embed", "x", "features", n_out=32)
    b.save(work / "embed.mlmodel")


def _setup_deltas(work: Path):
    from pippin.pipelines.cli.main import main

    _sound_folder(work / "base-sounds", ["tone", "hum", "noise"], seed=7)
    _sound_folder(work / "my-sounds", ["tone", "hum"], clips=2, seed=8)
    _sound_folder(work / "alice-sounds", ["tone", "noise"], clips=2, seed=9)
    _sound_folder(work / "bob-sounds", ["hum", "noise"], clips=2, seed=10)
    assert main(["train", "sound", str(work / "base-sounds"), "-o", str(work / "sound.mlmodel"), "-q",
                 "--feature-extractor", "scratch", "--epochs", "2", "--batch-size", "8"]) == 0
    shutil.copy(work / "sound.mlmodel", work / "base.mlmodel")
    for who in ("alice", "bob"):
        assert main(["update", str(work / "base.mlmodel"), str(work / f"{who}-sounds"), "-o",
                     str(work / f"{who}.mlmodel"), "--epochs", "1", "-q"]) == 0
        assert main(["diff", str(work / "base.mlmodel"), str(work / f"{who}.mlmodel"), "-o",
                     str(work / f"{who}.mldelta"), "-q"]) == 0


# first line of a block -> what to make before it runs
SETUP = {
    "# DATA: a folder with one sub-folder per label": _setup_sound_cli,
    "pippin train sound drums/": _setup_backbones,
    "pippin train recommender ratings.csv": _setup_recommender_cli,
    "pippin train recommender ratings.parquet": _setup_spark,  # after the recommender block made ratings.csv
    "from pippin.audio import SoundClassifier\nfrom pippin.audio.spark": _setup_spark_sound,
    "model = pp.load(\"MyClassifier.mlmodel\")": _setup_running,
    "from pippin.pipelines import PipelineClassifier": _setup_knn,
    "pippin update sound.mlmodel my-sounds/": _setup_deltas,
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def session():
    """One Python namespace for every python block, as one interpreter session reading the README."""
    return {"__name__": "__readme__"}


def _commands(body: str):
    """Shell lines (continuations joined, comments dropped) split at ``&&``."""
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        command = []
        for word in words + ["&&"]:
            if word == "&&":
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def _not_run(argv) -> bool:
    return shlex.join(argv) in {shlex.join(shlex.split(c)) for c in NOT_RUN}


def test_readme_blocks_run_in_order(work, session, monkeypatch, capsys, request):
    """One test walks every block in README order (blocks share files and a namespace, so they cannot be
    spread over pytest-xdist workers); a failure names its block."""
    for n, lang, body in BLOCKS:
        _run_block(n, lang, body, work, session, monkeypatch, capsys, request)


# a block that uses an optional extra runs only where the extra is installed (.ci/run installs them all);
# README text -> the module the extra brings
OPTIONAL = {"--engine spark": "pyspark", "pippin.recommend.spark": "pyspark", "pippin.audio.spark": "pyspark",
            "pippin sync ": "sqlalchemy"}


def _missing_extra(body: str):
    import importlib.util

    return next((module for text, module in OPTIONAL.items()
                 if text in body and importlib.util.find_spec(module) is None), None)


def _run_block(n, lang, body, work, session, monkeypatch, capsys, request):
    if _missing_extra(body):
        return  # e.g. `pip install ".[test]"` alone: no Spark, no sync server
    monkeypatch.chdir(work)
    monkeypatch.setenv("PIPPIN_SYNC_STATE", str(work / ".sync-state.json"))  # `pippin sync`'s device state: not ~/.config
    for key, setup in SETUP.items():
        if key in body and not (work / f".setup-{setup.__name__}").exists():
            setup(work)
            (work / f".setup-{setup.__name__}").touch()
    code = _substitute(body)
    if "../shared/datasets/movielens-100k" in code:
        code = code.replace("../shared/datasets/movielens-100k", str(request.getfixturevalue("movielens_dir")))
    if lang == "python":
        try:
            exec(compile(code, f"README.md python block {n}", "exec"), session)
        except Exception as exc:
            raise AssertionError(f"README python block {n} failed: {type(exc).__name__}: {exc}") from exc
        return
    from pippin.pipelines.cli.main import main

    ran = 0
    for argv in _commands(code):
        if _not_run(argv):
            continue
        assert argv[0] == "pippin", f"README bash block {n}: {shlex.join(argv)!r} is neither pippin nor in NOT_RUN"
        status = main(argv[1:])
        captured = capsys.readouterr()
        assert status == 0, f"{shlex.join(argv)} exited {status}: {captured.err[-2000:]}"
        ran += 1
    assert ran or all(_not_run(a) for a in _commands(code))
