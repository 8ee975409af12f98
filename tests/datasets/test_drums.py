"""Hydrogen drum kits: keyword mapping, kit groups and errors, on a tiny generated kit tree."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from pippin.datasets import DatasetError
from pippin.datasets.drums import DEFAULT_DRUMKITS, DRUM_CLASSES, drum_class, load_drumkits

_NS = "http://www.hydrogen-music.org/drumkit"


def _kit(root, name, instruments, *, layered=False):
    """A kit folder: ``instruments`` is [(instrument name, [file names])]; every file is a short wav."""
    kit = root / name
    kit.mkdir(parents=True)
    parts = []
    for inst, files in instruments:
        layers = "".join(f"<layer><filename>{f}</filename><min>0</min><max>1</max></layer>" for f in files)
        if layered:
            layers = f"<instrumentComponent><component_id>0</component_id>{layers}</instrumentComponent>"
        parts.append(f"<instrument><id>0</id><name>{inst}</name><volume>1</volume>{layers}</instrument>")
        for f in files:
            soundfile.write(str(kit / f), np.zeros(441, np.float32), 44100)
    (kit / "drumkit.xml").write_text(f'<?xml version="1.0"?><drumkit_info xmlns="{_NS}"><name>{name}</name>'
                                     f"<instrumentList>{''.join(parts)}</instrumentList></drumkit_info>")
    return kit


@pytest.mark.parametrize(("text", "label"), [
    ("Kick (Tama Superstar 22\")", "kick"), ("c3 - bass drum 1", "kick"), ("BassDrum", "kick"), ("BD_08", "kick"),
    ("Kick Stomp", "kick"), ("Snare Rimshot", "snare"), ("PowR_SN_1", "snare"), ("Hi-Hat Open", "hi-hat"),
    ("Closed HH 2", "hi-hat"), ("Sabian Hat Choke", "hi-hat"), ("hihat-closed-6", "hi-hat"), ("tomhi2", "tom"),
    ("Floor Tom", "tom"), ("crash16inch", "crash"), ("Ride Bell", "ride"), ("Hand Clap", "clap"),
])
def test_keywords_map_names_to_classes(text, label):
    assert drum_class(text) == label and label in DRUM_CLASSES


@pytest.mark.parametrize("text", ["Cowbell", "Stick", "Rim Click", "Crash/Ride Bow", "ride-crash20inch", "15",
                                  "Sample: beats_01-39.flac", "Djembe1 Bass", "Tambourine", ""])
def test_unmapped_or_ambiguous_names_give_none(text):
    assert drum_class(text) is None


def test_loads_kits_with_labels_and_groups(tmp_path):
    _kit(tmp_path, "KitB", [("Kick", ["k1.wav", "k2.wav"]), ("Cowbell", ["cb.wav"]), ("17", ["sn_01.flac"])])
    _kit(tmp_path, "KitA", [("Open HH", ["oh.wav"]), ("Crash/Ride", ["cr.wav"]), ("Tom Low", ["t.wav", "t.wav"])],
         layered=True)
    (tmp_path / "not-a-kit").mkdir()
    data = load_drumkits(tmp_path)
    assert [p.name for p in data.paths] == ["oh.wav", "t.wav", "k1.wav", "k2.wav", "sn_01.flac"]
    assert data.labels == ["hi-hat", "tom", "kick", "kick", "snare"]
    assert data.extra["groups"] == ["KitA", "KitA", "KitB", "KitB", "KitB"]
    assert data.extra["kits"] == ["KitA", "KitB"]
    assert all(p.is_file() for p in data.paths)


def test_missing_sample_file_is_skipped(tmp_path):
    kit = _kit(tmp_path, "Kit", [("Snare", ["s.wav"]), ("Kick", ["k.wav"])])
    (kit / "k.wav").unlink()
    assert load_drumkits(tmp_path).labels == ["snare"]


def test_missing_folder_names_the_package(tmp_path):
    with pytest.raises(DatasetError, match="no such folder") as info:
        load_drumkits(tmp_path / "nowhere")
    assert info.value.where == str(tmp_path / "nowhere") and "apt-get install hydrogen-drumkits" in info.value.hint


def test_folder_without_kits_fails(tmp_path):
    (tmp_path / "Kit").mkdir()
    with pytest.raises(DatasetError, match="no kit folder with a drumkit.xml"):
        load_drumkits(tmp_path)


def test_kits_without_mapped_samples_fail(tmp_path):
    _kit(tmp_path, "Percussion", [("Cowbell", ["cb.wav"]), ("Agogo High", ["a.wav"])])
    with pytest.raises(DatasetError, match="maps to one of"):
        load_drumkits(tmp_path)


def test_broken_xml_is_a_dataset_error(tmp_path):
    (tmp_path / "Kit").mkdir()
    (tmp_path / "Kit" / "drumkit.xml").write_text("<drumkit_info><instrument>")
    with pytest.raises(DatasetError, match="drumkit.xml"):
        load_drumkits(tmp_path)


def test_installed_kits():
    if not DEFAULT_DRUMKITS.is_dir():
        pytest.skip(f"{DEFAULT_DRUMKITS} is absent (apt-get install hydrogen-drumkits)")
    data = load_drumkits()
    assert len(data.extra["kits"]) == 13 and set(data.labels) == set(DRUM_CLASSES)
    assert len(data) == 449
