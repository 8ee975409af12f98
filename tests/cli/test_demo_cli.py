"""``pippin demo``: completes and prints where its model files are."""

from __future__ import annotations


from pippin.pipelines import load
from pippin.pipelines.cli.main import main


def test_demo_fast_completes_and_prints_the_model_paths(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out)]) == 0  # 0: every exported model validated
    captured = capsys.readouterr()
    text = captured.out
    assert "validate recommender.mlmodel: valid" in captured.err
    assert "recommend for user-000" in captured.err
    for name in ("sound.mlmodel", "recommender.mlmodel", "sound-personalized.mlmodel"):
        path = out.resolve() / name
        assert str(path) in text and path.is_file()
    personalized = load(out / "sound-personalized.mlmodel")
    assert "clicks" in personalized.class_labels
