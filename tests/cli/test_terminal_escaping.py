"""Issue 12.7: strings a model carries (feature names, descriptions, class labels, item ids)
reach the terminal with their control characters escaped, in every text-mode print."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pippin.pipelines import KNearestNeighborsClassifier
from pippin.pipelines.cli.main import main
from pippin.spec import io as spec_io

TITLE_AND_CLEAR = "\x1b]0;owned\x07\x1b[2J\x1b[H"
EVIL = f"evil{TITLE_AND_CLEAR}\r\u202e"


def _no_controls(text: str) -> None:
    for bad in ("\x1b", "\x07", "\r", "\u202e"):
        assert bad not in text, repr(text)


def test_terminal_safe_escapes_controls_and_keeps_text():
    from pippin.pipelines.cli.output import terminal_safe

    assert terminal_safe("a\x1b[2Jb\nc\td é中") == "a\\x1b[2Jb\nc\td é中"
    assert terminal_safe("a\nb\r", one_line=True) == "a\\nb\\r"
    assert terminal_safe("\u202e\x9b\x7f") == "\\u202e\\x9b\\x7f"


@pytest.fixture()
def evil_knn(tmp_path):
    knn = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1, updatable=False)
    spec = knn.add_samples([[0, 0], [5, 5]], [EVIL, "fine"]).to_spec()
    spec.description.input[0].shortDescription = f"input {TITLE_AND_CLEAR}"
    spec.description.metadata.shortDescription = f"model {TITLE_AND_CLEAR}"
    spec.description.metadata.author = EVIL
    return spec_io.save(spec, tmp_path / "evil.mlmodel")


def test_inspect_escapes_names_descriptions_and_labels(evil_knn, capsys):
    assert main(["inspect", str(evil_knn)]) == 0
    out, err = capsys.readouterr()
    _no_controls(out + err)
    assert "\\x1b]0;owned\\x07" in out
    assert main(["inspect", "--json", str(evil_knn)]) == 0  # JSON keeps the exact strings (escaped by JSON)
    out, _ = capsys.readouterr()
    assert EVIL in json.dumps(json.loads(out)) or "\\u001b" in out


def test_predict_escapes_labels(tmp_path, capsys):
    import soundfile as sf

    from pippin.audio.network import build_network, export_pipeline

    net = build_network([EVIL, "calm"], seed=0, learning_rate=1e-3, batch_size=8, epochs=1)
    dense2 = next(l for l in net.neuralNetworkClassifier.layers if l.name == "dense2")
    dense2.innerProduct.bias.floatValue[:] = [50.0, -50.0]  # the evil label wins
    path = spec_io.save(export_pipeline(net, metadata={}), tmp_path / "sound.mlmodel")
    sf.write(tmp_path / "clip.wav", np.zeros(16000, np.float32), 16000)
    assert main(["predict", str(path), str(tmp_path / "clip.wav")]) == 0
    out, err = capsys.readouterr()
    _no_controls(out + err)
    assert "evil\\x1b]0;owned" in out


def test_recommend_text_mode_escapes_item_ids(tmp_path, capsys):
    from pippin.recommend import ItemSimilarityRecommender

    table = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", EVIL, "a", "b", EVIL]})
    model = ItemSimilarityRecommender(similarity="cooccurrence", top_k=None, threshold=0.0)
    model.fit(table, user="user", item="item")
    path = model.export(tmp_path / "rec.mlmodel")
    assert main(["recommend", str(path), "--items", "a", "--k", "3"]) == 0
    out, err = capsys.readouterr()
    _no_controls(out + err)
    assert "evil\\x1b]0;owned" in out


def test_error_lines_stay_one_line_and_escaped(tmp_path, capsys):
    path = tmp_path / f"bad{TITLE_AND_CLEAR}\n.mlmodel"
    path.write_bytes(b"\x00garbage")
    assert main(["inspect", str(path)]) == 2
    _, err = capsys.readouterr()
    _no_controls(err)
    assert err.count("\n") == 1
