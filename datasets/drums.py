"""Hydrogen drum kits (Debian's ``hydrogen-drumkits``) as a labelled one-shot sound dataset.

Each kit is a folder holding a ``drumkit.xml`` and its samples. Every sample file
an instrument plays (every velocity layer) becomes one clip, labelled from the
instrument's name, or from the file name when the instrument name says nothing
(``"15"``, ``"Sample: beats_01-39.flac"``), with the keyword rules in
``DRUM_KEYWORDS``. Instruments that match no class (cowbell, stick, conga) or
more than one (``"Crash/Ride"``) are dropped, and a file two instruments share
is counted once. The kit of each clip is kept in
``dataset.extra["groups"]`` so that benchmarks can hold whole kits out.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from .errors import DatasetError
from .sound import SoundDataset

__all__ = ["DRUM_CLASSES", "DRUM_KEYWORDS", "DEFAULT_DRUMKITS", "drum_class", "load_drumkits"]

DEFAULT_DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
DRUM_CLASSES = ("clap", "crash", "hi-hat", "kick", "ride", "snare", "tom")

# A word matches a keyword when it starts with it ("tomhi2" is a tom; "stomp" is not).
# Multi-word keywords are matched on the joined words ("bass drum", "hi hat").
DRUM_KEYWORDS = {
    "kick": ("kick", "bass drum", "bassdrum", "bd"),
    "snare": ("snare", "sn", "sd"),
    "hi-hat": ("hi hat", "hihat", "hh", "hat", "ohh", "chh"),
    "tom": ("tom", "floor tom"),
    "crash": ("crash", "cr"),
    "ride": ("ride", "rd"),
    "clap": ("clap", "handclap"),
}
# Short keywords (file-name abbreviations such as BD_01.aiff) must be a whole word.
_WHOLE_WORD = {"bd", "sn", "sd", "hh", "ohh", "chh", "cr", "rd"}
_WORD = re.compile(r"[a-z]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("hi-hat", "hihat"))


def _matches(text: str) -> set[str]:
    words = _words(text)
    joined = " ".join(words)
    found = set()
    for label, keywords in DRUM_KEYWORDS.items():
        for keyword in keywords:
            if " " in keyword:
                hit = re.search(rf"\b{keyword}", joined) is not None
            elif keyword in _WHOLE_WORD:
                hit = keyword in words
            else:
                hit = any(word.startswith(keyword) for word in words)
            if hit:
                found.add(label)
                break
    return found


def drum_class(text: str) -> str | None:
    """The drum class ``text`` names (an instrument or file name), or None if it names none or several.

    Examples
    --------
    >>> drum_class("Kick (Tama Superstar 22\\")"), drum_class("Hi-Hat Open"), drum_class("Crash/Ride")
    ('kick', 'hi-hat', None)
    """
    found = _matches(text)
    return found.pop() if len(found) == 1 else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _instruments(xml_path: Path) -> list[tuple[str, list[str]]]:
    """(instrument name, [sample file names]) for every instrument of a drumkit.xml."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as error:
        raise DatasetError(f"cannot read the kit description: {error}", where=str(xml_path)) from None
    out = []
    for element in root.iter():
        if _local(element.tag) != "instrument":
            continue
        name, files = "", []
        for child in element.iter():
            tag = _local(child.tag)
            if tag == "name" and not name:
                name = (child.text or "").strip()
            elif tag == "filename" and (child.text or "").strip():
                files.append(child.text.strip())
        out.append((name, files))
    return out


def _kit_clips(kit: Path) -> list[tuple[Path, str]]:
    clips, seen = [], set()
    for name, files in _instruments(kit / "drumkit.xml"):
        named = _matches(name)
        if len(named) > 1:  # "Crash/Ride": ambiguous, dropped whatever its files are called
            continue
        for file_name in files:
            label = next(iter(named)) if named else drum_class(Path(file_name).stem)
            path = kit / file_name
            if label is None or path in seen or not path.is_file():
                continue
            seen.add(path)
            clips.append((path, label))
    return clips


def load_drumkits(root: str | os.PathLike | None = None) -> SoundDataset:
    """The one-shot samples of every Hydrogen kit under ``root``, labelled kick/snare/hi-hat/tom/crash/ride/clap.

    Parameters
    ----------
    root : path-like, optional
        The folder holding one folder per kit, each with a ``drumkit.xml``
        (default ``/usr/share/hydrogen/data/drumkits``, where Debian's
        ``hydrogen-drumkits`` installs them).

    Returns
    -------
    SoundDataset
        ``paths`` and ``labels`` [shape=(n_files,)], ordered by kit, then by the
        kit's instrument order; ``extra["groups"]`` is the kit folder name of each
        file [shape=(n_files,)], and ``extra["kits"]`` the kits in that order.

    Raises
    ------
    DatasetError
        The folder is missing, holds no kit, or no sample maps to a drum class.
    """
    root = DEFAULT_DRUMKITS if root is None else Path(root)
    hint = "install the kits with 'apt-get install hydrogen-drumkits', or pass the folder holding them"
    if not root.is_dir():
        raise DatasetError("no such folder", where=str(root), hint=hint)
    kits = sorted(p for p in root.iterdir() if (p / "drumkit.xml").is_file())
    if not kits:
        raise DatasetError("found no kit folder with a drumkit.xml", where=str(root), hint=hint)
    paths, labels, groups = [], [], []
    for kit in kits:
        for path, label in _kit_clips(kit):
            paths.append(path)
            labels.append(label)
            groups.append(kit.name)
    if not paths:
        raise DatasetError(f"no sample of {len(kits)} kits maps to one of {list(DRUM_CLASSES)}", where=str(root))
    return SoundDataset(paths, labels, source=f"Hydrogen drum kits in {root}",
                        extra={"groups": groups, "kits": sorted(set(groups), key=groups.index)})
