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


@pytest.mark.parametrize("extractor, takes, options", [
    ("scratch", range(5, 8), {"epochs": 2}),
    ("speech", range(5, 8), {"epochs": 3}),
    ("sounds", range(5, 6), {"epochs": 2}),  # augment=True: 4 copies of each training clip, made on the driver
])
def test_featurize_then_fit_equals_the_local_trainer(spark, fsdd_dir, tmp_path, extractor, takes, options):
    from pippin.audio import SoundClassifier
    from pippin.audio.spark import featurize, fit
    from pippin.datasets import SoundDataset, load_fsdd

    data = load_fsdd(fsdd_dir, split="train", speakers=["theo"], takes=takes)
    data = SoundDataset(data.paths + [tmp_path / "missing.wav"], data.labels + ["3"], source=data.source)

    def classifier():
        return SoundClassifier(feature_extractor=extractor, random_state=0, progress=False, **options)

    local = classifier().fit(data).export(tmp_path / "local.mlmodel")
    df = spark.createDataFrame(pd.DataFrame({"path": [str(p) for p in data.paths], "label": data.labels}))
    featurize(df, feature_extractor=extractor).write.parquet(str(tmp_path / "features.parquet"))
    trained = fit(spark.read.parquet(str(tmp_path / "features.parquet")), classifier(), source=data.source)
    assert trained.skipped_ == [{"path": str(tmp_path / "missing.wav"), "reason": "no such audio file"}]
    assert trained.export(tmp_path / "spark.mlmodel").read_bytes() == local.read_bytes()


def test_featurize_reads_bytes_as_it_reads_paths(spark, fsdd_dir):
    from pippin.audio.spark import featurize
    from pippin.datasets import load_fsdd

    data = load_fsdd(fsdd_dir, split="test", speakers=["jackson"], takes=range(0, 1))
    table = pd.DataFrame({"path": [str(p) for p in data.paths], "label": data.labels})
    by_path = featurize(spark.createDataFrame(table), feature_extractor="speech").toPandas()
    table["path"] = [p.read_bytes() for p in data.paths]
    by_bytes = featurize(spark.createDataFrame(table), feature_extractor="speech").toPandas()
    assert len(by_path) >= len(data.paths) and by_path.error.isna().all()
    assert list(by_bytes.features) == list(by_path.features)
    assert by_bytes.start.tolist() == by_path.start.tolist()


def test_featurize_and_fit_name_what_is_wrong(spark, fsdd_dir):
    from pippin.audio import SoundClassifier
    from pippin.audio.spark import featurize, fit

    df = spark.createDataFrame(pd.DataFrame({"path": ["a.wav"], "label": ["x"]}))
    with pytest.raises(AudioError, match="no label column 'digit'"):
        featurize(df, feature_extractor="speech", label_col="digit")
    with pytest.raises(AudioError, match="feature_extractor='auto'"):
        featurize(df, feature_extractor="auto")
    rows = featurize(df, feature_extractor="scratch")
    with pytest.raises(AudioError, match=r"features of \['scratch'\] with overlap \[0.5\], but the classifier has "
                                         r"feature_extractor='speech'"):
        fit(rows, SoundClassifier(feature_extractor="speech"))
