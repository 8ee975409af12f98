"""`pippin update` and `pippin personalize --head` give the same model bytes on 1 and 2 cores (issue 18).

``pippin update`` on labelled audio reads the files, runs the frozen front end and the
network's frozen layers on forked processes, in fixed blocks of files
(``pippin.pipelines.cli.audio_prefix``); the core count is the process's CPU affinity
(what ``taskset`` sets), which these tests change in-process.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from pippin.pipelines import load
from pippin.pipelines.cli import audio_ahead, audio_prefix
from pippin.pipelines.cli.main import main
from pippin.pipelines.cli.update_cmd import read_labelled_windows

TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """A scratch sound classifier (updatable) and a labelled folder of demo sounds to update it with."""
    from pippin.audio import SoundClassifier
    from pippin.datasets import make_demo_sounds

    root = tmp_path_factory.mktemp("cores")
    data = make_demo_sounds(root / "all", clips_per_kind=8, seconds=1.5, seed=5)
    for path, label in zip(data.paths, data.labels):
        i = int(path.stem.rsplit("_", 1)[1])
        part = "train" if i < 3 else "more"
        (root / part / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / part / label / path.name)
    clf = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=0, progress=False,
                          validation_fraction=0.0).fit(root / "train")
    return {"root": root, "model": clf.export(root / "sound.mlmodel")}


@pytest.fixture()
def small_blocks(monkeypatch):
    """Blocks of 4 files and chunks of 3 windows: several blocks per process and several chunks per block."""
    monkeypatch.setattr(audio_prefix, "BLOCK", 4)
    monkeypatch.setattr(audio_ahead, "BLOCK", 4)
    monkeypatch.setattr(audio_prefix, "CHUNK", 3)


def _on_cpus(n, fn):
    """``fn()`` with this process's affinity cut to its first ``n`` CPUs (restored after)."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(sorted(allowed)[:n]))
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, allowed)


def test_frozen_blobs_do_not_depend_on_the_process_count(sounds, small_blocks):
    model = load(sounds["model"])
    runs = [audio_prefix.frozen_examples(sounds["root"] / "more", model, n_jobs=n) for n in (1, 2, 3)]
    frozen, labels, n_files = runs[0]
    assert n_files == 25 and len(labels) == len(next(iter(frozen.values())))
    for other, other_labels, _ in runs[1:]:
        assert other_labels == labels
        assert all(np.array_equal(frozen[k], other[k]) for k in frozen)
    # the same blobs as running the frozen stages and layers over every window at once, in this process
    windows, window_labels, _ = read_labelled_windows(sounds["root"] / "more", model)
    assert list(window_labels) == labels
    from pippin.pipelines.update.core_ml_update import FrozenPrefix

    last = model.stages[-1]
    values = model.frozen_features({"audioSamples": windows})
    inputs = {k: values[k] for k in last.input_descriptions}
    direct = FrozenPrefix.of(last, {k: v[:1] for k, v in inputs.items()})(inputs)
    assert all(np.allclose(frozen[k], direct[k], atol=1e-5) for k in frozen)


def test_update_with_frozen_blobs_equals_the_update_on_windows(sounds, small_blocks):
    model = load(sounds["model"])
    frozen, labels, _ = audio_prefix.frozen_examples(sounds["root"] / "more", model, n_jobs=2)
    windows, _, _ = read_labelled_windows(sounds["root"] / "more", model)
    label = np.array(labels, dtype=object)
    a = model.update({"classLabel": label}, frozen=frozen, epochs=2).spec
    b = model.update({"audioSamples": windows, "classLabel": label}, epochs=2).spec
    assert a.description == b.description
    wa = [layer.innerProduct.weights.floatValue for layer in a.pipelineClassifier.pipeline.models[-1]
          .neuralNetworkClassifier.layers if layer.WhichOneof("layer") == "innerProduct"]
    wb = [layer.innerProduct.weights.floatValue for layer in b.pipelineClassifier.pipeline.models[-1]
          .neuralNetworkClassifier.layers if layer.WhichOneof("layer") == "innerProduct"]
    assert all(np.allclose(np.asarray(x), np.asarray(y), atol=1e-5) for x, y in zip(wa, wb))
    assert a.SerializeToString() != load(sounds["model"]).spec.SerializeToString()


def test_update_names_frozen_blobs_the_network_does_not_read(sounds):
    model = load(sounds["model"])
    with pytest.raises(Exception, match="frozen blobs given"):
        model.update({"classLabel": np.array(["tone"], dtype=object)}, frozen={"nope": np.zeros((1, 3))}, epochs=1)


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs in this process's affinity")
def test_update_cli_same_bytes_on_1_and_2_cores(sounds, small_blocks, tmp_path, capsys):
    outs = {}
    for n in (1, 2, 1):
        out = tmp_path / f"u{n}.mlmodel"
        code = _on_cpus(n, lambda: main(["update", str(sounds["model"]), str(sounds["root"] / "more"), "-o", str(out),
                                         "--epochs", "2", "--json"]))
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["n_files"] == 25 and len(report["losses"]) == 2
        outs.setdefault(n, set()).add(out.read_bytes())
    assert outs[1] == outs[2] and len(outs[1]) == 1


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs in this process's affinity")
def test_personalize_head_same_bytes_on_1_and_2_cores(sounds, small_blocks, tmp_path, capsys):
    new = tmp_path / "new"
    for label in ("whistle", "buzz"):  # two new labels: other demo kinds' clips, relabelled
        (new / label).mkdir(parents=True)
    for i, path in enumerate(sorted((sounds["root"] / "more").rglob("*.wav"))[:6]):
        shutil.copy(path, new / ("whistle" if i % 2 else "buzz") / path.name)
    outs = []
    for n in (1, 2):
        out = tmp_path / f"p{n}.mlmodel"
        code = _on_cpus(n, lambda: main(["personalize", str(sounds["model"]), str(new), "--head", "--epochs", "2",
                                         "--base-examples", str(sounds["root"] / "more"), "-o", str(out), "-q"]))
        assert code == 0
        outs.append(out.read_bytes())
    capsys.readouterr()
    assert outs[0] == outs[1]
    # the CLI's path (old files read ahead, blobs from the original model's frozen layers, embeddings on a forked
    # child) trains the head the API trains on every old window: the same weights to float rounding
    from pippin.pipelines.personalize.head import personalize_head
    from pippin.spec import io as spec_io

    spec = spec_io.load(sounds["model"])
    examples = read_labelled_windows(new, load(spec))[:2]
    base = read_labelled_windows(sounds["root"] / "more", load(spec))[:2]
    api = personalize_head(spec, examples, base_examples=base, epochs=2)
    cli = spec_io.load(tmp_path / "p2.mlmodel")
    nets = [m.pipelineClassifier.pipeline.models[-1].neuralNetworkClassifier for m in (cli, api)]
    assert list(nets[0].stringClassLabels.vector) == list(nets[1].stringClassLabels.vector)
    dense = [(a.innerProduct, b.innerProduct) for a, b in zip(*[n.layers for n in nets])
             if a.WhichOneof("layer") == "innerProduct"]
    assert dense and all(np.allclose(a.weights.floatValue, b.weights.floatValue, atol=1e-5) for a, b in dense)


def test_a_file_that_fails_in_a_forked_reader_raises_its_own_error(sounds, small_blocks, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(sounds["root"] / "more", data)
    broken = sorted((data / "tone").glob("*.wav"))[-1]  # in the last block: a forked process reads it
    broken.write_text("not audio")
    code = main(["update", str(sounds["model"]), str(data), "-o", str(tmp_path / "o.mlmodel"), "--json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code != 0 and broken.name in json.dumps(error) and "forked" not in error["message"]
    assert not (tmp_path / "o.mlmodel").exists()


def test_personalize_head_from_file_blobs_equals_the_windows_path(sounds, small_blocks):
    """The head trained on blobs of the chosen old windows (read on forked processes) is the one trained on
    every old window read here: the same class-balanced picks, the same weights to float rounding."""
    from pippin.pipelines.personalize.sound import grown_head, personalize_head
    from pippin.spec import io as spec_io

    spec = spec_io.load(sounds["model"])
    new_dir = sounds["root"] / "more" / "tone"
    windows, labels, _ = read_labelled_windows(new_dir.parent, load(spec))
    keep = [i for i, label in enumerate(labels) if label == "tone"]
    examples = (windows[keep], ["beep"] * len(keep))  # a new label
    base = read_labelled_windows(sounds["root"] / "train", load(spec))[:2]
    grown = grown_head(spec, examples)
    with audio_prefix.FileBlobs.of(sounds["root"] / "train", load(grown), n_jobs=2) as files:
        assert files.labels == list(base[1])
        a = personalize_head(spec, examples, base_examples=files, epochs=2, max_per_class=4, grown=grown)
    b = personalize_head(spec, examples, base_examples=base, epochs=2, max_per_class=4)
    nets = [s.pipelineClassifier.pipeline.models[-1].neuralNetworkClassifier for s in (a, b)]
    assert list(nets[0].stringClassLabels.vector) == list(nets[1].stringClassLabels.vector)
    for la, lb in zip(nets[0].layers, nets[1].layers):
        if la.WhichOneof("layer") == "innerProduct":
            assert np.allclose(la.innerProduct.weights.floatValue, lb.innerProduct.weights.floatValue, atol=1e-5)
    assert a.description.metadata.userDefined["pippin.examples_seen"] == b.description.metadata.userDefined[
        "pippin.examples_seen"]


def test_update_cli_on_a_personalized_knn_pipeline_still_appends_examples(sounds, tmp_path, capsys):
    """A k-NN last stage has no frozen prefix: the update reads the windows as before."""
    knn = tmp_path / "knn.mlmodel"
    assert main(["personalize", str(sounds["model"]), str(sounds["root"] / "more"), "-o", str(knn), "-q",
                 "--base-examples", str(sounds["root"] / "train")]) == 0
    capsys.readouterr()
    code = main(["update", str(knn), str(sounds["root"] / "train"), "-o", str(tmp_path / "k2.mlmodel"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["n_files"] == 15 and report["kind"].startswith("pipeline")


def _wait_for_reader(ahead, seconds=60.0):
    import time

    deadline = time.monotonic() + seconds
    while ahead._proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs in this process's affinity")
def test_read_ahead_hands_over_the_windows_a_consumer_would_read(sounds, small_blocks, tmp_path):
    """The read-ahead child's blocks are the windows read here; a block it could not read (a broken file) or
    that a consumer claimed first is read by the consumer; its files are gone after close."""
    from pippin.spec import io as spec_io

    data = tmp_path / "data"
    shutil.copytree(sounds["root"] / "more", data)
    broken = sorted((data / "tone").glob("*.wav"))[0]
    broken.write_text("not audio")
    spec = spec_io.load(sounds["model"])
    ahead = audio_ahead.ReadAhead.of(data, spec)
    assert ahead is not None and len(ahead.blocks) > 2
    folder = ahead._dir
    try:
        _wait_for_reader(ahead)
        paths = ahead.paths
        bad = next(j for j, (a, b) in enumerate(ahead.blocks) if broken in [paths[i] for i in range(a, b)])
        for j, (a, b) in enumerate(ahead.blocks):
            got = ahead.take(j)
            if j == bad:
                assert got is None  # the consumer reads it, and reports the broken file itself
                continue
            own = [ahead._read(i) for i in range(a, b)]
            assert got is not None and got[1] == [len(w) for w in own]
            assert np.array_equal(got[0], np.concatenate(own))
            assert ahead.take(j) is None  # taken once
        assert not os.listdir(folder)
        assert ahead.matches(paths, ahead.key, ahead.block) and not ahead.matches(paths, ahead.key, ahead.block + 1)
    finally:
        ahead.close()
    assert not os.path.exists(folder)


def test_read_ahead_is_off_on_one_cpu(sounds):
    from pippin.spec import io as spec_io

    assert _on_cpus(1, lambda: audio_ahead.ReadAhead.of(sounds["root"] / "more", spec_io.load(sounds["model"]))) is None


def test_embeddings_from_frozen_blobs_are_the_embeddings(sounds, small_blocks):
    """``--head`` imprints its new rows from embeddings computed on the new windows' frozen blobs: the same
    values (to float rounding) as a pass through the embedding network, on any number of processes."""
    from pippin.pipelines.personalize.head import embeddings_of_blobs, head_embeddings
    from pippin.spec import io as spec_io

    spec = spec_io.load(sounds["model"])
    model = load(spec)
    windows = read_labelled_windows(sounds["root"] / "more", model)[0]
    expected = head_embeddings(spec, windows)
    for n_jobs in (1, 2):
        with audio_prefix.FileBlobs.of(sounds["root"] / "train", model, n_jobs=n_jobs) as files:
            picks = np.arange(0, len(files.labels), 2)
            old, new = files.blobs(picks, extra=windows)
            assert files.blobs(picks) is old  # asked again: the kept result
            assert all(np.array_equal(old[b], files.blobs(np.arange(len(files.labels)))[b][picks]) for b in old)
            got = embeddings_of_blobs(spec, files.prefix, new)
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-5)


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs in this process's affinity")
def test_read_ahead_reads_the_users_recordings_first(sounds, small_blocks):
    """``personalize --head`` has the child read the user's own recordings before the old ones: the consumer
    takes the windows it would read (same bytes and labels), and both listings are handed over, not redone."""
    from pippin.spec import io as spec_io

    spec = spec_io.load(sounds["model"])
    model = load(spec)
    ahead = audio_ahead.ReadAhead.of(sounds["root"] / "more", spec, first=str(sounds["root"] / "train"))
    assert ahead is not None and ahead.first_paths
    try:
        assert ahead.listing(sounds["root"] / "more") is ahead.dataset
        assert ahead.listing(str(sounds["root"] / "train"), first=True) is ahead.first_dataset
        assert ahead.listing(sounds["root"] / "train") is None  # another table: the caller lists it
        assert ahead.take_first(ahead.first_paths[1:], ahead.key) is None  # other files: not these windows
        got = read_labelled_windows(sounds["root"] / "train", model, ahead=ahead)
        assert ahead.take_first(ahead.first_paths, ahead.key) is None  # taken once
        expected = read_labelled_windows(sounds["root"] / "train", model)
        assert np.array_equal(got[0], expected[0]) and got[0].flags.writeable
        assert list(got[1]) == list(expected[1]) and got[2] == expected[2]
        with audio_prefix.FileBlobs.of(sounds["root"] / "more", model, ahead=ahead) as files:
            assert files.paths == list(ahead.paths)
    finally:
        ahead.close()


def test_finished_file_blobs_keep_their_last_blobs(sounds, small_blocks):
    """``finish`` lets the forked processes end early (``personalize --head`` trains meanwhile): the last result
    is still handed out, anything else is refused with a clear error on 2 processes and computed here on 1."""
    from pippin.pipelines.errors import PipelineError

    model = load(sounds["model"])
    for n_jobs in (2, 1):
        with audio_prefix.FileBlobs.of(sounds["root"] / "train", model, n_jobs=n_jobs) as files:
            picks = np.arange(0, len(files.labels), 2)
            kept = files.blobs(picks)
            files.finish()
            assert files.blobs(picks) is kept
            if n_jobs == 2:
                with pytest.raises(PipelineError, match="finished"):
                    files.blobs(picks[:1])
            else:
                assert all(np.array_equal(files.blobs(picks[:1])[b], kept[b][:1]) for b in kept)
