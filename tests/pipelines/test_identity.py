"""Identity models pass their inputs through."""

from __future__ import annotations

import numpy as np

from pippin.pipelines import load
from pippin.spec import Model


def identity_spec(*, inputs=("x",), outputs=("x",), width=3):
    spec = Model()
    spec.specificationVersion = 4
    spec.identity.SetInParent()
    for names, target in ((inputs, spec.description.input), (outputs, spec.description.output)):
        for name in names:
            f = target.add()
            f.name = name
            f.type.multiArrayType.dataType = 65568
            f.type.multiArrayType.shape.append(width)
    return spec


def test_identity_returns_inputs_by_name_and_position():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    same = load(identity_spec())
    np.testing.assert_array_equal(same.predict_batch({"x": x})["x"], x)
    renamed = load(identity_spec(outputs=("y",)))
    np.testing.assert_array_equal(renamed.predict({"x": x[1]})["y"], x[1])
