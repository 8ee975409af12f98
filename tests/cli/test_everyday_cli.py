"""Issue 13 items 6-8: progress lines, real datasets straight into the CLI, and the small visible defects."""

from __future__ import annotations

import io
import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from pippin.datasets import make_demo_interactions, make_demo_sounds
from pippin.datasets.sound import load_sound_named
from pippin.pipelines.cli.main import main
from pippin.recommend import ItemSimilarityRecommender, evaluate, random_holdout


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("everyday_sounds")
    make_demo_sounds(root / "folders", clips_per_kind=2, seconds=1.0, seed=5)
    flat = root / "flat"
    flat.mkdir()
    for path in sorted((root / "folders").glob("*/*.wav")):
        (flat / f"{path.parent.name}_{path.stem.rsplit('_', 1)[1]}.wav").write_bytes(path.read_bytes())
    (flat / "readme.wav").write_text("not audio and not matching")
    return root


SCRATCH = ("--feature-extractor", "scratch", "--batch-size", "8", "--seed", "0")


# -- item 6: one progress path ------------------------------------------------------------------------------
def test_json_and_no_terminal_still_print_one_line_per_stage_and_epoch(sounds, tmp_path, capsys):
    code, out, err = _run(capsys, "train", "sound", str(sounds / "folders"), "-o", str(tmp_path / "m.mlmodel"),
                          *SCRATCH, "--epochs", "2", "--json")
    assert code == 0 and json.loads(out)["ok"]
    lines = err.splitlines()
    assert any(line.startswith("training a sound classifier") for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]
    assert "\r" not in err and "%|" not in err  # no bar off a terminal


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_and_epoch_lines_never_collide_on_a_terminal(sounds, tmp_path, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["train", "sound", str(sounds / "folders"), "-o", str(tmp_path / "t.mlmodel"), *SCRATCH,
                 "--epochs", "3"])
    err = terminal.getvalue()
    assert code == 0 and "%|" in err  # a bar was drawn
    assert len(re.findall(r"(?:^|[\r\n])epoch \d+: loss[^\r\n]*\n", err)) == 3, err  # whole lines of their own
    assert not re.search(r"[^\r\n]epoch \d+:", err), err


@pytest.mark.parametrize("quiet", [False, True])
def test_every_warning_once_in_one_format(sounds, tmp_path, capsys, quiet):
    folder = tmp_path / "data"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for n, path in enumerate(sorted((sounds / "folders" / ("tone" if label == "a" else "hum")).glob("*.wav"))):
            (folder / label / f"{n}.wav").write_bytes(path.read_bytes())
    (folder / "a" / "broken.wav").write_text("not audio")
    code, out, err = _run(capsys, "train", "sound", str(folder), "-o", str(tmp_path / "w.mlmodel"), *SCRATCH,
                          "--epochs", "1", *(["-q"] if quiet else []))
    assert code == 0
    skipped = [line for line in err.splitlines() if "broken.wav" in line]
    assert len(skipped) == 1 and skipped[0].startswith("pippin: warning: skipped ")
    assert "WARNING" not in err
    assert ("epoch 1:" in err) != quiet  # -q drops the stage and epoch lines, never a warning


def test_update_prints_its_stages_and_epochs_with_json(sounds, tmp_path, capsys):
    model = tmp_path / "u.mlmodel"
    assert main(["train", "sound", str(sounds / "folders"), "-o", str(model), *SCRATCH, "--epochs", "1", "-q"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, "update", str(model), str(sounds / "folders"), "-o", str(tmp_path / "v.mlmodel"),
                          "--epochs", "2", "--json")
    assert code == 0 and json.loads(out)["ok"]
    assert "reading 10 audio files" in err and "updating the" in err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]


def test_python_api_draws_no_bar_off_a_terminal(sounds, capsys):
    from pippin.audio import SoundClassifier

    SoundClassifier(feature_extractor="scratch", epochs=1, batch_size=8, random_state=0,
                    progress=True).fit(sounds / "folders")
    ItemSimilarityRecommender(progress=True).fit(make_demo_interactions(n_users=50, n_items=20, seed=1),
                                                 user="user_id", item="item_id")
    err = capsys.readouterr().err
    assert "%|" not in err and "\r" not in err


# -- item 7: real datasets straight into the CLI -----------------------------------------------------------
def test_label_from_name_trains_and_evaluates_a_flat_folder(sounds, tmp_path, capsys):
    flat = sounds / "flat"
    code, _, err = _run(capsys, "train", "sound", str(flat), "-o", str(tmp_path / "f.mlmodel"), *SCRATCH,
                        "--epochs", "1")
    assert code == 2 and "--label-from-name" in err  # the hint is in the one line, not only in --json
    code, out, err = _run(capsys, "train", "sound", str(flat), "-o", str(tmp_path / "f.mlmodel"), *SCRATCH,
                          "--epochs", "1", "--label-from-name", r"^([a-z]+)_\d+\.wav$", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["labels"] == ["chirp", "clicks", "hum", "noise", "tone"]
    assert payload["training_data"]["n_files"] == 10 and "1 audio file does not match" in err
    code, out, _ = _run(capsys, "evaluate", str(tmp_path / "f.mlmodel"), str(flat),
                        "--label-from-name", r"^(?P<label>[a-z]+)_0\.wav$", "--json")
    assert code == 0 and json.loads(out)["n_clips"] == 5


def test_fsdd_conventional_split_by_name(fsdd_dir):
    train = load_sound_named(fsdd_dir, r"^(\d)_[a-z]+_([5-9]|\d\d)\.wav$")
    test = load_sound_named(fsdd_dir, r"^(\d)_[a-z]+_[0-4]\.wav$")
    assert (len(train), len(test)) == (2700, 300)
    assert train.classes == [str(d) for d in range(10)] and set(train.paths).isdisjoint(test.paths)
    from pippin.datasets import load_fsdd

    for named, split in ((train, "train"), (test, "test")):  # the same files in the same order: the same model
        reference = load_fsdd(fsdd_dir, split=split)
        assert named.paths == reference.paths and named.labels == reference.labels


def test_header_less_table_through_train_and_evaluate(tmp_path, capsys):
    table = make_demo_interactions(n_users=120, n_items=40, seed=4)[["user_id", "item_id", "rating"]]
    table["ts"] = np.arange(len(table))
    table.to_csv(tmp_path / "u.data", sep="\t", header=False, index=False)
    flags = ("--sep", "\\t", "--columns", "user_id,item_id,rating,ts", "--holdout-fraction", "0.2", "--seed", "1")
    code, out, _ = _run(capsys, "train", "recommender", str(tmp_path / "u.data"), "-o", str(tmp_path / "m.mlmodel"),
                        "--similarity", "cosine", "--rating-col", "rating", *flags, "--json")
    assert code == 0 and json.loads(out)["held_out"] > 0
    code, out, _ = _run(capsys, "evaluate", str(tmp_path / "m.mlmodel"), "--history", str(tmp_path / "u.data"),
                        *flags, "--json")
    payload = json.loads(out)
    train, test = random_holdout(table, user="user_id", fraction=0.2, seed=1)
    model = ItemSimilarityRecommender(similarity="cosine").fit(train, user="user_id", item="item_id", rating="rating")
    want = evaluate(model, train, test, user="user_id", item="item_id", rating="rating", ks=(10,))
    assert code == 0 and payload["rating_col"] == "rating"
    assert payload["precision@10"] == pytest.approx(want["precision@10"], abs=1e-12)


def test_movielens_figure_from_the_cli_alone(movielens_dir, tmp_path, capsys):
    """The README's 'pippin cosine top_k=64 (ratings)' row, 0.2931, with the README's commands."""
    data = str(movielens_dir / "u.data")
    flags = ("--sep", "\\t", "--columns", "user_id,item_id,rating,ts", "--holdout-fraction", "0.2", "--seed", "0")
    model = str(tmp_path / "ml.mlmodel")
    assert main(["train", "recommender", data, "-o", model, "--rating-col", "rating", "--similarity", "cosine",
                 "--top-k", "64", *flags]) == 0
    capsys.readouterr()
    assert main(["evaluate", model, "--history", data, *flags, "--json"]) == 0
    assert round(json.loads(capsys.readouterr().out)["precision@10"], 4) == 0.2931


# -- item 8: small but visible ----------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, param", [("--patience", "-1", "early_stopping_patience"),
                                                ("--epochs", "0", "epochs="), ("--overlap", "1.5", "overlap=")])
def test_errors_name_the_flag(sounds, tmp_path, capsys, flag, value, param):
    code, _, err = _run(capsys, "train", "sound", str(sounds / "folders"), "-o", str(tmp_path / "x.mlmodel"),
                        "--feature-extractor", "scratch", flag, value)
    assert code == 2 and f"{flag} {value}" in err and param not in err


def test_one_label_is_rejected_before_any_audio_is_read(sounds, tmp_path, monkeypatch, capsys):
    import pippin.audio.classifier as classifier

    def boom(*args, **kwargs):
        raise AssertionError("audio was read")

    for name in ("featurize_files", "embed_files", "choose_backbone"):
        monkeypatch.setattr(classifier, name, boom)
    code, _, err = _run(capsys, "train", "sound", str(sounds / "flat"), "-o", str(tmp_path / "x.mlmodel"),
                        "--label-from-name", r"^(tone)_")
    assert code == 2 and "need at least two labels" in err and "['tone']" in err and "np." not in err


def test_recommender_messages_show_python_values():
    from pippin.recommend.errors import RecommendError

    for users, items in ((["a", "a", "b"], [5, 6, 5]), ([1, 1, 2], ["x", "y", "x"])):
        model = ItemSimilarityRecommender().fit(pd.DataFrame({"u": users, "i": items}), user="u", item="i")
        for call in (lambda: model.recommend(99), lambda: model.recommend("zz"),
                     lambda: model.similar_items(np.array([items[0], 99] if isinstance(items[0], int) else ["q"]))):
            with pytest.raises(RecommendError) as info:
                call()
            assert "np." not in str(info.value), str(info.value)


def test_one_epoch_is_singular(sounds, tmp_path, capsys):
    code, out, _ = _run(capsys, "train", "sound", str(sounds / "folders"), "-o", str(tmp_path / "o.mlmodel"),
                        *SCRATCH, "--epochs", "1")
    assert code == 0 and "1 epoch;" in out and "1 epochs" not in out


def test_missing_audio_file_says_so(sounds, tmp_path, capsys):
    model = tmp_path / "p.mlmodel"
    assert main(["train", "sound", str(sounds / "folders"), "-o", str(model), *SCRATCH, "--epochs", "1", "-q"]) == 0
    code, _, err = _run(capsys, "predict", str(model), str(tmp_path / "gone.wav"))
    assert code == 2 and "gone.wav: no such audio file" in err and "System error" not in err


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rated")
    table = make_demo_interactions(n_users=100, n_items=40, seed=7)[["user_id", "item_id", "rating"]]
    train, test = random_holdout(table, user="user_id", seed=0)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    model = folder / "m.mlmodel"
    assert main(["train", "recommender", str(folder / "train.csv"), "-o", str(model), "--rating-col", "rating",
                 "--similarity", "cosine", "-q"]) == 0
    return folder, model, train, test


def test_evaluate_uses_the_models_ratings_without_repeating_the_flag(rated, capsys):
    folder, model, train, test = rated
    argv = ["evaluate", str(model), "--history", str(folder / "train.csv"), "--holdout", str(folder / "test.csv"),
            "--json"]
    _, out, _ = _run(capsys, *argv)
    _, out_flag, _ = _run(capsys, *argv, "--rating-col", "rating")
    fitted = ItemSimilarityRecommender(similarity="cosine").fit(train, user="user_id", item="item_id", rating="rating")
    want = evaluate(fitted, train, test, user="user_id", item="item_id", rating="rating", ks=(10,))["precision@10"]
    assert json.loads(out)["precision@10"] == pytest.approx(want, abs=1e-12)
    assert json.loads(out)["precision@10"] == json.loads(out_flag)["precision@10"]
    assert json.loads(out)["rating_col"] == "rating"


@pytest.mark.parametrize("flags, text", [(("--threshold", "-1"), "--threshold -1"), (("--top-k", "0"), "--top-k 0")])
def test_bad_recommender_flags_are_refused(rated, tmp_path, capsys, flags, text):
    folder, *_ = rated
    code, _, err = _run(capsys, "train", "recommender", str(folder / "train.csv"), "-o", str(tmp_path / "x.mlmodel"),
                        *flags)
    assert code == 2 and text in err and "top_k=" not in err and not (tmp_path / "x.mlmodel").exists()


def test_recommend_text_table_is_aligned(rated, capsys):
    _, model, train, _ = rated
    code, out, _ = _run(capsys, "recommend", str(model), "--items", "item-001,item-003", "--k", "12")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 12 and len({len(line) for line in lines}) == 1
    assert len({line.index("item-") for line in lines}) == 1


def test_inspect_text_shows_the_metadata(rated, capsys):
    _, model, _, _ = rated
    code, out, _ = _run(capsys, "inspect", str(model))
    assert code == 0 and "metadata (" in out and "similarity: cosine" in out and "rating_column: rating" in out
    assert "item_popularity: " in out


def test_flexible_shape_errors_quote_the_allowed_range():
    from pippin.pipelines.errors import PipelineError
    from pippin.pipelines.runtime.features import to_batch
    from pippin.spec import Model

    feature = Model().description.input.add()
    feature.name = "x"
    array = feature.type.multiArrayType
    array.dataType = 65568
    for low, high in ((1, 4), (3, 3), (8, -1)):
        size = array.shapeRange.sizeRanges.add()
        size.lowerBound, size.upperBound = low, high
    assert to_batch(feature, np.zeros((2, 4, 3, 9)), where="m").shape == (2, 4, 3, 9)
    with pytest.raises(PipelineError, match=r"expected \(n_examples, 1\.\.4, 3, 8\.\.any\)"):
        to_batch(feature, np.zeros((2, 5, 3, 9)), where="m")
    enumerated = Model().description.input.add()
    enumerated.name = "y"
    enumerated.type.multiArrayType.dataType = 65568
    for shape in ((1, 3), (2, 3)):
        enumerated.type.multiArrayType.enumeratedShapes.shapes.add().shape.extend(shape)
    with pytest.raises(PipelineError, match=r"with shape \[1, 3\] or \[2, 3\]"):
        to_batch(enumerated, np.zeros((2, 4, 3)), where="m")
