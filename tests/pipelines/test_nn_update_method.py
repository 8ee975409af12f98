"""``pippin.pipelines.load(file).update(...)`` on a network is Core ML 3's update (``update_network``)."""

import numpy as np

import pippin.pipelines as pp
from pippin.pipelines.build.network import NetworkBuilder
from pippin.pipelines.update import update_network


def _regressor_spec():
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["out"], mode="regressor", seed=9)
    b.add_dense("fc1", "x", "h", n_out=6)
    b.add_activation("act", "h", "ha", kind="tanh")
    b.add_dense("fc2", "ha", "out", n_out=2)
    b.make_updatable(["fc2"])
    b.set_loss("mean_squared_error")
    b.set_optimizer("sgd", learning_rate=0.05, momentum=0.9, batch_size=4)
    b.set_epochs(2)
    return b.spec


def test_model_update_equals_update_network(tmp_path):
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((12, 4)).astype(np.float32),
            "out_true": rng.standard_normal((12, 2)).astype(np.float32)}
    path = pp.load(_regressor_spec()).save(tmp_path / "r.mlmodel")
    model = pp.load(path)
    updated = model.update(data)
    assert updated.spec.SerializeToString() == update_network(pp.load(path), data).spec.SerializeToString()
    assert updated.spec.SerializeToString() != model.spec.SerializeToString()
    assert model.spec == pp.load(path).spec  # the original is untouched
