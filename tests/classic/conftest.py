"""Fixtures for the classic-kind tests: coremltools' scikit-learn converter, made usable.

coremltools 9.0 switches its scikit-learn converter off for scikit-learn newer than
1.5.1 (a version gate in ``coremltools._deps``). The converters themselves still
work on the fitted attributes of scikit-learn 1.9 for the models tested here, so
the fixture lifts the gate and reloads the converter modules; with a scikit-learn
the gate accepts, nothing is patched. Converters that fail on new scikit-learn
(``LogisticRegression`` lacks ``multi_class``, ``GradientBoosting*`` with array
``init_`` constants) are not used; those specs are built from the fitted
parameters in the tests instead.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import numpy as np
import pytest


@pytest.fixture(scope="session")
def sk_convert():
    """``coremltools.converters.sklearn.convert`` (skips when sklearn or coremltools is missing)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("coremltools")
    import coremltools._deps as deps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not deps._HAS_SKLEARN:
            deps._HAS_SKLEARN = True
            import coremltools.converters.sklearn as package

            names = [m.name for m in pkgutil.iter_modules(package.__path__)]
            # shared helpers first, the converter tables last
            order = sorted(names, key=lambda n: (n not in ("_sklearn_util", "_tree_ensemble"),
                                                 n in ("_converter_internal", "_converter"), n))
            for name in order:
                importlib.reload(importlib.import_module(f"{package.__name__}.{name}"))
            importlib.reload(package)
        from coremltools.converters import sklearn as converter

    def convert(model, *args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert(model, *args).get_spec()

    return convert


@pytest.fixture(scope="session")
def data():
    """Seeded train and held-out rows: ``X``, ``Xt`` [shape=(n, 4)], binary, 3-class and real targets."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(240, 4))
    xt = rng.normal(size=(120, 4))

    def targets(a):
        return {
            "y2": (a[:, 0] + a[:, 1] > 0).astype(np.int64),
            "y3": np.digitize(a[:, 0] + 0.4 * a[:, 2], [-0.5, 0.5]).astype(np.int64),
            "yr": a @ np.array([1.0, 2.0, -3.0, 0.5]) + np.sin(2 * a[:, 0]),
        }

    return {"X": x, "Xt": xt, **targets(x)}

