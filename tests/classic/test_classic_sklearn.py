"""Classic Core ML kinds converted by coremltools from scikit-learn predict in Pippin as
scikit-learn does on held-out rows: labels exactly, probabilities and values to 1e-6 relative."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines.runtime import load
from pippin.spec import Model
from pippin.spec.validate import validate

sklearn = pytest.importorskip("sklearn")
from sklearn import ensemble, impute, linear_model, pipeline, preprocessing, svm, tree  # noqa: E402
from sklearn.feature_extraction import DictVectorizer  # noqa: E402


def close(got, want, rtol=1e-6):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=rtol)


def run(spec, x):
    """Load the converted spec in Pippin (after validating it) and predict the rows ``x``."""
    ours = Model.FromString(spec.SerializeToString())
    assert validate(ours) == []
    model = load(ours)
    names = list(model.input_descriptions)
    feeds = {names[0]: x} if len(names) == 1 else {n: x[:, i] for i, n in enumerate(names)}
    return model, model.predict_batch(feeds)


CLASSIFIERS = {
    "LinearSVC": lambda: svm.LinearSVC(),
    "SVC-rbf": lambda: svm.SVC(),
    "SVC-poly": lambda: svm.SVC(kernel="poly", degree=3, coef0=0.5),
    "SVC-sigmoid": lambda: svm.SVC(kernel="sigmoid", gamma=0.1),
    "SVC-linear": lambda: svm.SVC(kernel="linear"),
    "NuSVC": lambda: svm.NuSVC(),
    "DecisionTree": lambda: tree.DecisionTreeClassifier(random_state=0),
    "RandomForest": lambda: ensemble.RandomForestClassifier(n_estimators=6, random_state=0),
}


@pytest.mark.parametrize("target", ["y2", "y3"])
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_labels_and_probabilities(sk_convert, data, name, target):
    estimator = CLASSIFIERS[name]().fit(data["X"], data[target])
    spec = sk_convert(estimator)
    model, out = run(spec, data["Xt"])
    labels = out[spec.description.predictedFeatureName]
    np.testing.assert_array_equal(labels, estimator.predict(data["Xt"]))
    probs = spec.description.predictedProbabilitiesName
    if hasattr(estimator, "predict_proba") and probs in out:
        want = estimator.predict_proba(data["Xt"])
        n_trees = len(getattr(estimator, "estimators_", [None]))
        if target == "y3" and n_trees > 1:
            # the converter stores each tree's class fractions unscaled; Core ML sums them (n_trees x mean)
            want = want * n_trees
        close(out[probs], want)


@pytest.mark.parametrize("target", ["y2", "y3"])
@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly"])
def test_svc_probability_model_follows_libsvm(sk_convert, data, kernel, target):
    """With probA/probB, probabilities are libsvm's coupled pairwise ones; the label is the most probable."""
    if "probability" not in svm.SVC().get_params():
        pytest.skip("this scikit-learn has no SVC(probability=True) (removed in 1.11)")
    estimator = svm.SVC(kernel=kernel, probability=True, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        estimator.fit(data["X"], data[target])
        want = estimator.predict_proba(data["Xt"])
    spec = sk_convert(estimator)
    _, out = run(spec, data["Xt"])
    got = out[spec.description.predictedProbabilitiesName]
    if target == "y2":
        # scikit-learn's bundled libsvm couples even two classes; libsvm (and Core ML) do not:
        # the two differ by well under 1% (exact parity with libsvm: test_classic_libsvm_xgboost.py)
        close(got, want, rtol=1e-2)
        return
    close(got, want)
    np.testing.assert_array_equal(out[spec.description.predictedFeatureName],
                                  estimator.classes_[np.argmax(want, axis=1)])


def test_string_labels_and_single_predict(sk_convert, data):
    names = np.array(["low", "mid", "high"], dtype=object)
    estimator = svm.SVC().fit(data["X"], names[data["y3"]])
    spec = sk_convert(estimator)
    model, out = run(spec, data["Xt"])
    np.testing.assert_array_equal(out[spec.description.predictedFeatureName], estimator.predict(data["Xt"]))
    one = model.predict({"input": data["Xt"][0]})
    assert one[spec.description.predictedFeatureName] == estimator.predict(data["Xt"][:1])[0]


REGRESSORS = {
    "LinearRegression": lambda: linear_model.LinearRegression(),
    "Ridge": lambda: linear_model.Ridge(alpha=0.5),
    "LinearSVR": lambda: svm.LinearSVR(random_state=0),
    "SVR-rbf": lambda: svm.SVR(C=3.0),
    "SVR-poly": lambda: svm.SVR(kernel="poly", degree=2, coef0=1.0),
    "SVR-sigmoid": lambda: svm.SVR(kernel="sigmoid", gamma=0.05),
    "NuSVR": lambda: svm.NuSVR(),
    "DecisionTree": lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=0),
    "RandomForest": lambda: ensemble.RandomForestRegressor(n_estimators=5, random_state=0),
}


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressor_values(sk_convert, data, name):
    estimator = REGRESSORS[name]().fit(data["X"], data["yr"])
    spec = sk_convert(estimator, ["a", "b", "c", "d"], "y")
    _, out = run(spec, data["Xt"])
    close(out["y"], estimator.predict(data["Xt"]))


def test_gradient_boosting_binary(sk_convert, data):
    estimator = ensemble.GradientBoostingClassifier(n_estimators=8, random_state=0).fit(data["X"], data["y2"])
    spec = sk_convert(estimator)
    _, out = run(spec, data["Xt"])
    np.testing.assert_array_equal(out[spec.description.predictedFeatureName], estimator.predict(data["Xt"]))
    close(out[spec.description.predictedProbabilitiesName], estimator.predict_proba(data["Xt"]))


def test_logistic_regression_binary(sk_convert, data):
    estimator = linear_model.LogisticRegression().fit(data["X"], data["y2"])
    estimator.multi_class = "ovr"  # the converter reads this attribute, gone from new sklearn; binary is OvR
    spec = sk_convert(estimator)
    _, out = run(spec, data["Xt"])
    np.testing.assert_array_equal(out[spec.description.predictedFeatureName], estimator.predict(data["Xt"]))
    close(out[spec.description.predictedProbabilitiesName], estimator.predict_proba(data["Xt"]))


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_normalizer(sk_convert, data, norm):
    estimator = preprocessing.Normalizer(norm=norm).fit(data["X"])
    spec = sk_convert(estimator, ["a", "b", "c", "d"], "y")
    _, out = run(spec, data["Xt"])
    close(next(iter(out.values())), estimator.transform(data["Xt"]))


def test_scaler_and_imputer(sk_convert, data):
    xt = data["Xt"].copy()
    xt[::7, 2] = np.nan
    for estimator in (preprocessing.StandardScaler().fit(data["X"]),
                      impute.SimpleImputer(strategy="mean").fit(np.where(data["X"] > 1.5, np.nan, data["X"]))):
        spec = sk_convert(estimator)
        rows = data["Xt"] if isinstance(estimator, preprocessing.StandardScaler) else xt
        _, out = run(spec, rows)
        close(next(iter(out.values())), estimator.transform(rows))


def test_one_hot_encoder(sk_convert):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(60, 3))
    estimator = preprocessing.OneHotEncoder().fit(x)
    spec = sk_convert(estimator)
    _, out = run(spec, x[:20])
    close(next(iter(out.values())), estimator.transform(x[:20]).toarray())


def test_dict_vectorizer(sk_convert):
    rows = [{"a": 1.0, "b": 2.0}, {"c": 3.5}, {"a": -1.0, "c": 0.5, "z": 9.0}]
    estimator = DictVectorizer().fit(rows[:2] + [{"a": 0.0, "c": 0.0}])
    spec = sk_convert(estimator)
    _, out = run(spec, rows)
    close(next(iter(out.values())), estimator.transform(rows).toarray())


def test_pipeline_scaler_one_hot_model_end_to_end(sk_convert, tmp_path):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, size=(200, 3)).astype(np.float64)
    y = ((x[:, 0] + x[:, 1]) % 3 == 0).astype(np.int64)
    xt = rng.integers(0, 4, size=(60, 3)).astype(np.float64)
    fitted = pipeline.Pipeline([("onehot", preprocessing.OneHotEncoder(sparse_output=False)),
                                ("scale", preprocessing.StandardScaler()),
                                ("model", svm.SVC())]).fit(x, y)
    spec = sk_convert(fitted)
    kinds = {m.WhichOneof("Type") for m in spec.pipelineClassifier.pipeline.models}
    assert "scaler" in kinds and "supportVectorClassifier" in kinds
    path = tmp_path / "pipe.mlmodel"
    path.write_bytes(spec.SerializeToString())
    model = load(path)
    out = model.predict_batch({"input": xt})
    np.testing.assert_array_equal(out[spec.description.predictedFeatureName], fitted.predict(xt))
    one = model.predict({"input": xt[3]})
    assert one[spec.description.predictedFeatureName] == fitted.predict(xt[3:4])[0]


def _boosted_spec(estimator, *, classifier):
    """A tree-ensemble spec built with coremltools' tree builders from a fitted GradientBoosting model.

    coremltools' own GradientBoosting converters fail under numpy 2 (they call ``float()`` on
    one-element arrays), so the builder is fed the same facts they would read: every tree's
    splits (``x <= threshold`` goes left), its leaf values times the learning rate, and the
    initial raw prediction as the base value.
    """
    from coremltools.models.tree_ensemble import TreeEnsembleClassifier, TreeEnsembleRegressor

    features = [("input", __import__("coremltools").models.datatypes.Array(estimator.n_features_in_))]
    raw_init = np.ravel(estimator._raw_predict_init(np.zeros((1, estimator.n_features_in_)))[0])
    if classifier:
        builder = TreeEnsembleClassifier(features, class_labels=list(estimator.classes_), output_features="label")
        builder.set_post_evaluation_transform("Classification_SoftMax" if raw_init.size > 1 else "Regression_Logistic")
    else:
        builder = TreeEnsembleRegressor(features, "y")
    builder.set_default_prediction_value(raw_init.tolist())
    for stage, trees in enumerate(estimator.estimators_):
        for dim, fitted in enumerate(trees):
            tree_id, t = stage * trees.size + dim, fitted.tree_
            for node in range(t.node_count):
                if t.children_left[node] >= 0:
                    builder.add_branch_node(tree_id, node, int(t.feature[node]), float(t.threshold[node]),
                                            "BranchOnValueLessThanEqual", int(t.children_left[node]),
                                            int(t.children_right[node]))
                else:
                    value = float(t.value[node].ravel()[0]) * estimator.learning_rate
                    builder.add_leaf_node(tree_id, node, {dim: value} if raw_init.size > 1 else value)
    return builder.spec


@pytest.mark.parametrize("target", ["y2", "y3", "yr"])
def test_gradient_boosting_with_coremltools_tree_builder(data, target):
    pytest.importorskip("coremltools")
    classifier = target != "yr"
    estimator = (ensemble.GradientBoostingClassifier if classifier else ensemble.GradientBoostingRegressor)(
        n_estimators=10, max_depth=3, random_state=0).fit(data["X"], data[target])
    spec = _boosted_spec(estimator, classifier=classifier)
    _, out = run(spec, data["Xt"])
    if classifier:
        np.testing.assert_array_equal(out[spec.description.predictedFeatureName], estimator.predict(data["Xt"]))
        close(out[spec.description.predictedProbabilitiesName], estimator.predict_proba(data["Xt"]))
    else:
        close(out["y"], estimator.predict(data["Xt"]))
