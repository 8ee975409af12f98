"""Tree ensembles from XGBoost and SVMs from LibSVM, converted by coremltools, predict in
Pippin as the original library does; a multinomial GLM built from scikit-learn's fitted
parameters follows scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pippin.pipelines.runtime import load
from pippin.spec import Model
from pippin.spec.validate import validate

ct = pytest.importorskip("coremltools")


def close(got, want, rtol=1e-6):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=rtol)


def _load(spec):
    ours = Model.FromString(spec.SerializeToString())
    assert validate(ours) == []
    return load(ours)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(5)
    x, xt = rng.normal(size=(300, 4)), rng.normal(size=(100, 4))
    return x, xt


@pytest.mark.parametrize("n_classes", [0, 2, 3])
def test_xgboost_trees(rows, n_classes):
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed (pip install xgboost-cpu)")
    x, xt = rows
    score = x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3]
    # coremltools' converter writes base score 0.5 (regression) / margin 0 (classes): fix it in the booster
    if n_classes == 0:
        booster = xgb.XGBRegressor(n_estimators=12, max_depth=4, base_score=0.5).fit(x, score)
    else:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
        booster = xgb.XGBClassifier(n_estimators=12, max_depth=4, base_score=0.5).fit(x, y)
    names = ["f0", "f1", "f2", "f3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ct.converters.xgboost.convert(
            booster, feature_names=names, mode="regressor" if n_classes == 0 else "classifier",
            class_labels=None if n_classes == 0 else list(range(n_classes))).get_spec()
    model = _load(spec)
    # xgboost thresholds are float32 and it compares float32 inputs: give both the same float32 values
    xt32 = xt.astype(np.float32)
    out = model.predict_batch({n: xt32[:, i].astype(np.float64) for i, n in enumerate(names)})
    if n_classes == 0:
        close(out[spec.description.output[0].name], booster.predict(xt32), rtol=1e-5)  # xgboost sums in float32
    else:
        np.testing.assert_array_equal(out[spec.description.predictedFeatureName], booster.predict(xt32))
        close(out[spec.description.predictedProbabilitiesName], booster.predict_proba(xt32), rtol=1e-5)


@pytest.fixture
def libsvm_converter():
    """coremltools' LibSVM converter; libsvm-official >= 3.3 moved the enum constants it reads into classes
    and has no ``libsvm.__version__``: both are supplied here."""
    pytest.importorskip("libsvm.svmutil", reason="libsvm is not installed (pip install libsvm-official)")
    import libsvm
    from libsvm import svm as libsvm_module

    if not hasattr(libsvm, "__version__"):  # the converter copies it into the file's metadata
        from importlib.metadata import version

        libsvm.__version__ = version("libsvm-official")

    for enum in ("svm_forms", "kernel_names"):
        for member in getattr(libsvm_module, enum, ()):
            if not hasattr(libsvm_module, member.name):
                setattr(libsvm_module, member.name, int(member))
    from coremltools.converters import libsvm as converter

    return converter


@pytest.mark.parametrize("probability", [False, True])
@pytest.mark.parametrize("labels", [[1, 2], [12, 33, 1234]])
@pytest.mark.parametrize("kernel", [0, 1, 2, 3])  # linear, poly, rbf, sigmoid
def test_libsvm_classifier(rows, probability, labels, kernel, libsvm_converter):
    from libsvm import svmutil

    x, xt = rows
    y = np.array(labels)[np.digitize(x[:, 0] - x[:, 1], np.linspace(-1, 1, len(labels) + 1)[1:-1])]
    options = f"-q -s 0 -t {kernel} -g 0.3 -r 0.5 -d 2" + (" -b 1" if probability else "")
    trained = svmutil.svm_train(y.tolist(), x.tolist(), options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = libsvm_converter.convert(trained, ["a", "b", "c", "d"], "target").get_spec()
    model = _load(spec)
    out = model.predict_batch({n: xt[:, i] for i, n in enumerate("abcd")})
    want_labels, _, want_values = svmutil.svm_predict([0] * len(xt), xt.tolist(), trained,
                                                      "-q" + (" -b 1" if probability else ""))
    np.testing.assert_array_equal(out["target"], np.array(want_labels, dtype=np.int64))
    if probability:
        order = [trained.get_labels().index(label) for label in model.class_labels.tolist()]
        close(out[spec.description.predictedProbabilitiesName], np.array(want_values)[:, order])


@pytest.mark.parametrize("kernel", [0, 2])
def test_libsvm_regressor(rows, kernel, libsvm_converter):
    from libsvm import svmutil

    x, xt = rows
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + np.cos(x[:, 0])
    trained = svmutil.svm_train(y.tolist(), x.tolist(), f"-q -s 3 -t {kernel} -g 0.3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = libsvm_converter.convert(trained, ["a", "b", "c", "d"], "target").get_spec()
    out = _load(spec).predict_batch({n: xt[:, i] for i, n in enumerate("abcd")})
    want, _, _ = svmutil.svm_predict([0] * len(xt), xt.tolist(), trained, "-q")
    close(out["target"], want)


def test_multinomial_logistic_regression_as_reference_class_glm(rows):
    """Softmax over k scores equals Core ML's ReferenceClass encoding of the k-1 differences to class 0."""
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    x, xt = rows
    y = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    fitted = LogisticRegression(max_iter=500).fit(x, y)
    spec = Model()
    spec.specificationVersion = 1
    for name in ("input",):
        feature = spec.description.input.add()
        feature.name = name
        feature.type.multiArrayType.shape.append(4)
        feature.type.multiArrayType.dataType = 65600
    label = spec.description.output.add()
    label.name = "label"
    label.type.int64Type.SetInParent()
    probs = spec.description.output.add()
    probs.name = "probs"
    probs.type.dictionaryType.int64KeyType.SetInParent()
    spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName = "label", "probs"
    glm = spec.glmClassifier
    for row, bias in zip(fitted.coef_[1:] - fitted.coef_[0], fitted.intercept_[1:] - fitted.intercept_[0]):
        glm.weights.add().value.extend(row.tolist())
        glm.offset.append(float(bias))
    glm.classEncoding = glm.ReferenceClass
    glm.int64ClassLabels.vector.extend([0, 1, 2])
    out = _load(spec).predict_batch({"input": xt})
    np.testing.assert_array_equal(out["label"], fitted.predict(xt))
    close(out["probs"], fitted.predict_proba(xt))
