"""``pippin demo``: the whole tour on generated data, in about a minute.

Steps (each reported through ``say``): generate the demo sounds and interactions
(``pippin.datasets``), train a sound classifier on all kinds but one and a
recommender, export both, validate and inspect both, classify a clip, recommend
for a user, then personalize the sound model with the held-out kind from five
recordings and classify a new recording of it. It lives with the CLI, the one
room allowed to import the trainers and datasets; they are imported inside the
steps so that ``pippin --help`` stays fast.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["DemoResult", "run_demo", "NEW_SOUND"]

NEW_SOUND = "clicks"  # the kind the demo teaches by personalization
N_PERSONAL = 5  # recordings of it the "user" gives


@dataclass
class DemoResult:
    """What the demo made: file paths, checks and predictions (JSON-ready)."""

    folder: str
    files: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    seconds: float = 0.0


def _check(spec, path, say) -> dict:
    from ...spec.describe import describe, render_text
    from ...spec.validate import validate

    problems = validate(spec)
    say(f"  validate {path.name}: " + ("valid" if not problems else f"{len(problems)} problems: {problems[0]}"))
    say("  " + render_text(describe(spec, path=path)).replace("\n", "\n  "))
    return {"valid": not problems, "problems": [str(p) for p in problems]}


def _sound_data(root: Path, *, clips: int, seconds: float):
    """Demo sounds split into: training kinds, the user's few new recordings, held-out clips."""
    from ...datasets import make_demo_sounds

    data = make_demo_sounds(root / "sounds", clips_per_kind=clips, seconds=seconds, seed=0)
    train = root / "sounds-train"
    personal = root / "my-sounds" / NEW_SOUND
    for folder in (train, personal.parent):
        shutil.rmtree(folder, ignore_errors=True)
    personal.mkdir(parents=True)
    held_out = {}
    for path, label in zip(data.paths, data.labels):
        index = int(path.stem.rsplit("_", 1)[1])
        if label == NEW_SOUND:
            if index < N_PERSONAL:
                shutil.copy(path, personal / path.name)
            else:
                held_out.setdefault(label, path)
        elif index < clips - 1:
            (train / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, train / label / path.name)
        else:
            held_out.setdefault(label, path)
    return train, personal.parent, held_out


def _train_sound(root: Path, train: Path, *, epochs: int | None, say) -> Path:
    from ...audio import SoundClassifier

    say(f"training a sound classifier on {train} (feature extractor: auto) ...")
    clf = SoundClassifier(epochs=epochs, random_state=0, progress=False, validation_fraction=0.0)
    clf.fit(train)
    last = clf.history_rows_[-1]
    if clf.selection_:
        say(f"  chose the {clf.feature_extractor_!r} backbone (cross-validated accuracy "
            + ", ".join(f"{k} {v:.3f}" for k, v in clf.selection_["scores"].items()) + ")")
    say(f"  trained: labels {list(clf.classes_)}, {len(clf.history_rows_)} epochs, final loss {last['loss']:.4f}, "
        f"train accuracy {last['train_accuracy']:.2f}")
    return clf.export(root / "sound.mlmodel")


def _train_recommender(root: Path, say) -> tuple[Path, str, list]:
    from ...datasets import make_demo_interactions
    from ...recommend import ItemSimilarityRecommender

    table = make_demo_interactions(n_users=300, n_items=120, seed=0)
    csv = root / "interactions.csv"
    table.to_csv(csv, index=False)
    say(f"training an item-similarity recommender on {len(table)} interactions ({csv}) ...")
    rec = ItemSimilarityRecommender(similarity="jaccard", top_k=32)
    rec.fit(table, user="user_id", item="item_id")
    user = str(table["user_id"].iloc[0])
    history = sorted(table.loc[table["user_id"] == user, "item_id"].astype(str))
    return rec.export(root / "recommender.mlmodel"), user, history


def _windows(model, folder: Path):
    """Every window of a labelled audio folder, cut as ``model``'s audio input takes it, and each window's label."""
    import numpy as np

    from ...audio.inference import audio_input, window_align
    from ...audio.io import read_windows
    from ...datasets import load_sound_folder

    _, window, sample_rate = audio_input(model)
    data = load_sound_folder(folder)
    parts = [read_windows(p, warn_short=False, sample_rate=sample_rate, window=window,
                          align=window_align(model))[1] for p in data.paths]
    labels = [label for part, label in zip(parts, data.labels) for _ in range(len(part))]
    return np.concatenate(parts), labels


def _classify(model, path: Path) -> tuple[str, float]:
    from ...audio.inference import classify_files

    results, _ = classify_files(model, [path])
    return results[0]["label"], float(results[0]["probability"])


def run_demo(folder: str | Path = "pippin-demo", *, fast: bool = False,
             say: Callable[[str], None] = lambda line: None) -> DemoResult:
    """Run the demo into ``folder``; ``fast`` uses fewer clips and epochs (for tests).

    Returns
    -------
    DemoResult
        Paths of every file written, and what each step found.
    """
    from ...spec import io as spec_io
    from ..personalize.sound import personalize_knn
    from ..runtime.model import load

    start = time.perf_counter()
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    result = DemoResult(folder=str(root))
    clips, seconds, epochs = (7, 1.5, 4) if fast else (10, 2.4, None)
    train, personal, held_out = _sound_data(root, clips=clips, seconds=seconds)
    say(f"generated demo sounds in {root / 'sounds'} ({clips} clips of {seconds:g} s per kind)")
    sound_path = _train_sound(root, train, epochs=epochs, say=say)
    rec_path, user, history = _train_recommender(root, say)
    result.files.update(sound_model=str(sound_path), recommender=str(rec_path))
    for name, path in (("sound", sound_path), ("recommender", rec_path)):
        say(f"checking {path} ...")
        result.steps.append({"step": f"check {name}", **_check(spec_io.load(path), path, say)})

    sound = load(sound_path)
    clip = held_out[sorted(k for k in held_out if k != NEW_SOUND)[0]]
    label, probability = _classify(sound, clip)
    say(f"predict {clip.name}: {label} ({probability:.2f})")
    result.steps.append({"step": "predict", "clip": str(clip), "label": label, "probability": probability})

    rec = load(rec_path)
    out = rec.predict_batch({rec.item_input: [history]} | ({rec.k_input: [5]} if rec.k_input else {}))
    top = list(out[rec.list_output][0][:5]) if rec.list_output else []
    say(f"recommend for {user} (history {len(history)} items): {', '.join(map(str, top))}")
    result.steps.append({"step": "recommend", "user": user, "items": top})

    say(f"personalizing: teaching {NEW_SOUND!r} from {N_PERSONAL} recordings in {personal} ...")
    windows, labels = _windows(sound, personal)
    base_windows, base_labels = _windows(sound, train)
    personalized = personalize_knn(spec_io.load(sound_path), (windows, labels),
                                   base_examples=(base_windows, base_labels))
    personal_path = spec_io.save(personalized, root / "sound-personalized.mlmodel")
    result.files["personalized_model"] = str(personal_path)
    result.steps.append({"step": "check personalized", **_check(personalized, personal_path, say)})
    model = load(personal_path)
    for clip in (held_out[NEW_SOUND], clip):
        label, probability = _classify(model, clip)
        say(f"personalized predict {clip.name}: {label} ({probability:.2f})")
        result.steps.append({"step": "personalized predict", "clip": str(clip), "label": label,
                             "probability": probability})
    result.seconds = time.perf_counter() - start
    return result
