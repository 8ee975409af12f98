"""The SoundAnalysisPreprocessing builder and its runtime: spec shape, validation, coremltools, layering."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pippin.audio.preprocessing_spec import preprocessing_spec
from pippin.pipelines import PipelineError, load
from pippin.spec import SpecError, loads
from pippin.spec.validate import validate


def test_spec_fields():
    spec = preprocessing_spec()
    assert spec.specificationVersion == 4 and validate(spec) == []
    assert spec.soundAnalysisPreprocessing.WhichOneof("SoundAnalysisPreprocessingType") == "vggish"
    (inp,), (out,) = spec.description.input, spec.description.output
    assert inp.name == "audioSamples" and list(inp.type.multiArrayType.shape) == [15600]
    assert list(out.type.multiArrayType.shape) == [1, 96, 64]
    assert inp.type.multiArrayType.dataType == out.type.multiArrayType.dataType == 65568  # FLOAT32


def test_coremltools_reads_it(tmp_path):
    ct = pytest.importorskip("coremltools")
    from pippin.spec import save

    save(preprocessing_spec(), tmp_path / "pre.mlmodel")
    spec = ct.utils.load_spec(str(tmp_path / "pre.mlmodel"))
    assert spec.WhichOneof("Type") == "soundAnalysisPreprocessing"
    assert spec.soundAnalysisPreprocessing.HasField("vggish")


def test_renamed_features_run():
    model = load(preprocessing_spec(input_name="pcm", output_name="patch"))
    out = model.predict_batch({"pcm": np.zeros((2, 15600), np.float32)})["patch"]
    assert out.shape == (2, 1, 96, 64)


def test_wrong_declared_shape_is_refused_at_load():
    spec = preprocessing_spec()
    spec.description.input[0].type.multiArrayType.shape[:] = [16000]
    with pytest.raises(SpecError, match="expected \\[15600\\]"):
        load(loads(spec.SerializeToString()))


def test_wrong_input_shape_is_refused_at_predict():
    with pytest.raises(PipelineError, match="audioSamples"):
        load(preprocessing_spec()).predict_batch({"audioSamples": np.zeros((1, 100), np.float32)})


def test_runtime_does_not_import_the_trainer():
    code = ("import sys; from pippin.pipelines import load; from pippin.audio.preprocessing_spec import "
            "preprocessing_spec; load(preprocessing_spec()); "
            "print(sorted(m for m in sys.modules if m.startswith(('pippin.audio.classifier', "
            "'pippin.pipelines.update', 'pippin.datasets'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
