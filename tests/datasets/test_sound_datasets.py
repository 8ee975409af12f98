"""Sound dataset loaders: label folders, path,label tables, FSDD and the generated demo set."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from pippin.datasets import (DatasetError, SoundDataset, load_fsdd, load_sound_dataset, load_sound_folder,
                             load_sound_table, make_demo_sounds)


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.zeros(160), 16000)
    return path


def test_folder_per_label(tmp_path):
    _wav(tmp_path / "dog" / "a.wav")
    _wav(tmp_path / "dog" / "deep" / "b.flac")
    _wav(tmp_path / "cat" / "c.wav")
    (tmp_path / "cat" / "notes.txt").write_text("x")
    data = load_sound_folder(tmp_path)
    assert data.labels == ["cat", "dog", "dog"] and data.classes == ["cat", "dog"]
    assert [p.name for p in data.paths] == ["c.wav", "a.wav", "b.flac"]
    assert data.counts() == {"cat": 1, "dog": 2}


def test_folder_without_audio_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        load_sound_folder(tmp_path)


@pytest.mark.parametrize(("name", "sep"), [("t.csv", ","), ("t.tsv", "\t"), ("t.txt", ";")])
def test_table_resolves_relative_paths_from_its_folder(tmp_path, name, sep):
    _wav(tmp_path / "audio" / "x.wav")
    (tmp_path / name).write_text(f"path{sep}label\naudio/x.wav{sep}yes\n{tmp_path / 'abs.wav'}{sep}no\n")
    data = load_sound_table(tmp_path / name)
    assert data.paths == [tmp_path / "audio" / "x.wav", tmp_path / "abs.wav"]
    assert data.labels == ["yes", "no"]
    assert load_sound_dataset(tmp_path / name).labels == data.labels


def test_table_errors_name_the_row_and_column(tmp_path):
    (tmp_path / "bad.csv").write_text("file,label\na.wav,x\n")
    with pytest.raises(DatasetError, match="no column 'path'"):
        load_sound_table(tmp_path / "bad.csv")
    (tmp_path / "hole.csv").write_text("path,label\na.wav,x\nb.wav,\n")
    with pytest.raises(DatasetError, match="row 3, column 'label'"):
        load_sound_table(tmp_path / "hole.csv")
    with pytest.raises(DatasetError, match="nothing-here"):
        load_sound_dataset(tmp_path / "nothing-here")


def test_fsdd_conventional_split(tmp_path):
    for digit in (0, 1):
        for take in (0, 4, 5, 49):
            _wav(tmp_path / "recordings" / f"{digit}_alice_{take}.wav")
    _wav(tmp_path / "recordings" / "readme.wav")
    train, test = load_fsdd(tmp_path, split="train"), load_fsdd(tmp_path / "recordings", split="test")
    assert sorted(p.name for p in test.paths) == ["0_alice_0.wav", "0_alice_4.wav", "1_alice_0.wav", "1_alice_4.wav"]
    assert len(train) == 4 and set(train.labels) == {"0", "1"}
    assert len(load_fsdd(tmp_path, split="all", takes=[49])) == 2
    with pytest.raises(DatasetError, match="bob"):
        load_fsdd(tmp_path / "bob")


def test_real_fsdd_split_sizes(fsdd_dir):
    assert len(load_fsdd(fsdd_dir, split="test")) == 300
    assert len(load_fsdd(fsdd_dir, split="train")) == 2700


def test_demo_sounds_are_seeded_and_distinct(tmp_path):
    data = make_demo_sounds(tmp_path / "a", clips_per_kind=2, seconds=1.0, seed=3)
    again = make_demo_sounds(tmp_path / "b", clips_per_kind=2, seconds=1.0, seed=3)
    assert isinstance(data, SoundDataset) and len(data) == 10 and len(data.classes) == 5
    for p, q in zip(data.paths, again.paths):
        assert p.read_bytes() == q.read_bytes()
    clips = [soundfile.read(str(p))[0] for p in data.paths]
    assert all(len(c) == 16000 for c in clips)
    assert not np.allclose(clips[0], clips[2])


def test_subset_takes_a_numpy_boolean_mask():
    import numpy as np
    from pippin.datasets.sound import SoundDataset

    data = SoundDataset(["a.wav", "b.wav", "c.wav"], ["x", "y", "x"], "t")
    assert [p.name for p in data.subset(np.array([True, False, True])).paths] == ["a.wav", "c.wav"]
    assert [p.name for p in data.subset([2]).paths] == ["c.wav"]
