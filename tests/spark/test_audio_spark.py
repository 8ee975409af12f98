"""``pippin.audio.spark.predict`` equals ``pippin predict`` (``classify_files``) file by file and window by window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pippin.audio import AudioError

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


@pytest.fixture(scope="module")
def digit_model(fsdd_dir, tmp_path_factory):
    from pippin.audio import SoundClassifier
    from pippin.datasets import load_fsdd

    train = load_fsdd(fsdd_dir, split="train", speakers=["theo"], takes=range(5, 8))
    clf = SoundClassifier(feature_extractor="scratch", epochs=1, batch_size=16, random_state=0, progress=False)
    return clf.fit(train).export(tmp_path_factory.mktemp("spark-audio") / "digits.mlmodel")


def test_predict_equals_pippin_predict(spark, fsdd_dir, digit_model, tmp_path):
    from pippin.audio.inference import classify_files
    from pippin.audio.spark import predict
    from pippin.datasets import load_fsdd
    from pippin.pipelines import load

    test = load_fsdd(fsdd_dir, split="test", speakers=["jackson"])
    paths = [str(p) for p in test.paths] + [str(tmp_path / "missing.wav")]
    expected, skipped = classify_files(load(digit_model), paths, overlap=0.5)
    got = predict(digit_model, spark.createDataFrame(pd.DataFrame({"file": paths})), path_col="file").toPandas()
    got = got.set_index("file").loc[paths]
    assert got.loc[paths[-1], "error"] == skipped[0]["reason"]
    for want in expected:
        row = got.loc[want["path"]]
        assert row["label"] == want["label"] and pd.isna(row["error"])
        assert row["probability"] == pytest.approx(want["probability"], abs=1e-6)
        probs = dict(row["probabilities"])
        assert set(probs) == set(want["probabilities"])
        np.testing.assert_allclose([probs[k] for k in want["probabilities"]], list(want["probabilities"].values()),
                                   atol=1e-6)
        windows = list(row["windows"])
        assert [w["label"] for w in windows] == [w["label"] for w in want["windows"]]
        np.testing.assert_allclose([[w["start"], w["end"], w["probability"]] for w in windows],
                                   [[w["start"], w["end"], w["probability"]] for w in want["windows"]], atol=1e-6)


def test_wrong_path_column_is_named(spark, digit_model):
    from pippin.audio.spark import predict

    df = spark.createDataFrame(pd.DataFrame({"path": ["a.wav"]}))
    with pytest.raises(AudioError, match="no path column 'audio'"):
        predict(digit_model, df, path_col="audio")
