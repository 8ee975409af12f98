"""``update.shards``: data-parallel mini-batches equal the serial pass and do not depend on the core count."""

import os
import threading

import numpy as np
import pytest
from test_fit import _data, small_sound_net

import pippin.pipelines as pp
from pippin.pipelines.build import NetworkBuilder
from pippin.pipelines.errors import PipelineError
from pippin.pipelines.update import fit_network
from pippin.pipelines.update.network import layers_of
from pippin.pipelines.update.optimizers import SGD
from pippin.pipelines.update.fusion import PooledKept
from pippin.pipelines.update.shards import SHARD_SIZE, can_shard, resolve_workers, shard_bounds
from pippin.pipelines.update import trainer as trainer_module
from pippin.pipelines.update.trainer import Trainer


@pytest.fixture
def always_parallel(monkeypatch):
    """Keep the toy networks on the pool (they are below the size where the trainer stops handing shards out)."""
    monkeypatch.setattr(trainer_module, "MIN_PARALLEL_ELEMENTS", 0)


def _trainer(spec, n_jobs, *, batch_statistics=True):
    layers = layers_of(spec)
    for layer in layers:
        if layer.kind == "batchnorm":
            layer.batch_statistics = batch_statistics
    trainable = {layer.name: tuple(layer.params) for layer in layers if layer.params}
    return Trainer(layers, trainable=trainable, loss_kind="categoricalCrossEntropyLossLayer", loss_input="probs",
                   optimizer=SGD(learning_rate=0.0), n_jobs=n_jobs), layers


def _sharded_gradients(spec, x, y, n_jobs):
    trainer, layers = _trainer(spec, n_jobs)
    bounds = shard_bounds(len(y))
    with trainer:
        values, caches = trainer.runner.forward([{"x": x[a:b]} for a, b in bounds], train=True)
        probs = np.concatenate([v["probs"] for v in values])
        g = probs.reshape(len(y), -1).copy()
        g[np.arange(len(y)), y] -= 1
        g /= np.float32(len(y))
        seeds = [{"logits": g[a:b].reshape(values[i]["logits"].shape)} for i, (a, b) in enumerate(bounds)]
        grads = trainer.runner.backward(values, caches, seeds)
    return probs, grads, {layer.name: dict(layer.buffers) for layer in layers if layer.kind == "batchnorm"}


def _serial_gradients(spec, x, y):
    trainer, layers = _trainer(spec, 1)
    values, caches = trainer.graph.forward({"x": x}, train=True)  # the whole batch, one pass
    grads = trainer.graph.backward(values, caches, {}, softmax_ce={"probs": y})
    return values["probs"], grads, {layer.name: dict(layer.buffers) for layer in layers if layer.kind == "batchnorm"}


@pytest.mark.parametrize("n", [1, SHARD_SIZE, 3 * SHARD_SIZE + 5])
def test_sharded_gradients_equal_the_serial_pass(n):
    x, y = _data(n, seed=3)
    p_ser, g_ser, bn_ser = _serial_gradients(small_sound_net(), x, y)
    p_par, g_par, bn_par = _sharded_gradients(small_sound_net(), x, y, n_jobs=2)
    np.testing.assert_allclose(p_par.reshape(n, -1), p_ser.reshape(n, -1), rtol=1e-5, atol=1e-6)
    assert set(g_par) == set(g_ser) == {"conv1", "bn1", "conv2", "bn2", "fc1", "fc2"}
    for layer, params in g_ser.items():
        assert set(g_par[layer]) == set(params)
        for name, value in params.items():
            np.testing.assert_allclose(g_par[layer][name], value, rtol=2e-4, atol=2e-6, err_msg=f"{layer}.{name}")
    for layer, buffers in bn_ser.items():
        for name, value in buffers.items():
            np.testing.assert_allclose(bn_par[layer][name], value, rtol=1e-5, atol=1e-6)


def test_gradients_are_bit_identical_whatever_the_worker_count():
    x, y = _data(3 * SHARD_SIZE + 5, seed=4)
    _, base, _ = _sharded_gradients(small_sound_net(), x, y, n_jobs=1)
    for n_jobs in (2, 3):
        _, grads, _ = _sharded_gradients(small_sound_net(), x, y, n_jobs=n_jobs)
        for layer, params in base.items():
            for name, value in params.items():
                assert np.array_equal(grads[layer][name], value), (n_jobs, layer, name)


def _noise(batch, rng):
    return {k: v + rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in batch.items()}


@pytest.mark.parametrize("augment", [None, _noise])
def test_fit_network_gives_the_same_bytes_on_any_number_of_workers(always_parallel, augment):
    x, y = _data(40)
    kw = dict(epochs=2, batch_size=16, learning_rate=0.01, random_state=7, validation=(x[:8], y[:8]),
              augment=augment)
    runs = [fit_network(small_sound_net(), x, y, n_jobs=n_jobs, **kw) for n_jobs in (1, 2, 3)]
    first = runs[0][0].SerializeToString()
    for spec, history in runs[1:]:
        assert spec.SerializeToString() == first
        assert history == runs[0][1]


def _updatable_conv_net():
    """conv-bn-relu frozen, a second conv and the dense layer updatable (Core ML's update: stored statistics)."""
    b = NetworkBuilder(inputs=[("x", (1, 12, 8))], outputs=["probs"], mode="classifier",
                       class_labels=["a", "b", "c"], seed=2)
    b.add_conv("conv0", "x", "c0", n_out=3)
    b.add_batchnorm("bn0", "c0", "b0")
    b.add_activation("relu0", "b0", "r0")
    b.add_conv("conv1", "r0", "c1", n_out=4)
    b.add_activation("relu1", "c1", "r1")
    b.add_pooling("gavg", "r1", "ga", type="average", is_global=True)
    b.add_flatten("flat", "ga", "f")
    b.add_dense("fc1", "f", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    b.make_updatable(["fc1"])
    b.set_loss("categorical_cross_entropy", input="probs")
    b.set_optimizer("sgd", learning_rate=0.05, batch_size=16, momentum=0.9)
    b.set_epochs(3)
    b.set_shuffle(True, seed=1)
    return b.spec


def test_frozen_layers_run_once_and_train_alike(monkeypatch):
    x, y = _data(50)
    data = {"x": x, "classLabel": np.array(["a", "b", "c"])[y]}
    model = pp.load(_updatable_conv_net())
    kept = []
    original = Trainer.frozen_prefix

    def spy(self, blobs, **kw):
        out = original(self, blobs, **kw)
        kept.append(sorted(out))
        return out

    monkeypatch.setattr(Trainer, "frozen_prefix", spy)
    once = model.update(dict(data)).spec
    assert kept == [["f"]]  # the dense layer's input, computed once
    monkeypatch.setattr(Trainer, "frozen_prefix", lambda self, blobs, **kw: blobs)
    every_step = model.update(dict(data)).spec
    w_once = np.array(once.neuralNetworkClassifier.layers[-2].innerProduct.weights.floatValue)
    w_each = np.array(every_step.neuralNetworkClassifier.layers[-2].innerProduct.weights.floatValue)
    assert not np.array_equal(w_once, np.array(model.spec.neuralNetworkClassifier.layers[-2].innerProduct
                                               .weights.floatValue))
    np.testing.assert_allclose(w_once, w_each, rtol=1e-5, atol=1e-6)


def test_update_gives_the_same_bytes_on_any_number_of_workers(always_parallel):
    b = NetworkBuilder(inputs=[("x", (1, 12, 8))], outputs=["probs"], mode="classifier",
                       class_labels=["a", "b", "c"], seed=1)
    b.add_conv("conv1", "x", "c1", n_out=4)
    b.add_batchnorm("bn1", "c1", "b1")
    b.add_activation("relu1", "b1", "r1")
    b.add_pooling("gavg", "r1", "ga", type="average", is_global=True)
    b.add_flatten("flat", "ga", "f")
    b.add_dense("fc1", "f", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    b.make_updatable(["conv1", "fc1"])
    b.set_loss("categorical_cross_entropy", input="probs")
    b.set_optimizer("adam", learning_rate=0.01, batch_size=24)
    b.set_epochs(2)
    b.set_shuffle(True, seed=3)
    model = pp.load(b.spec)
    x, y = _data(60)
    data = {"x": x, "classLabel": np.array(["a", "b", "c"])[y]}
    out = [model.update(dict(data), n_jobs=n_jobs).spec.SerializeToString() for n_jobs in (1, 2)]
    assert out[0] == out[1]
    assert out[0] != b.spec.SerializeToString()


def _threads_of_steps(n_steps):
    x, y = _data(4 * SHARD_SIZE)
    seen = []
    trainer, layers = _trainer(small_sound_net(), 2)
    conv = next(layer for layer in layers if layer.name == "conv2")
    original = conv.forward_train

    def spy(*args):
        seen[-1].add(threading.current_thread().name)
        return original(*args)

    conv.forward_train = spy
    with trainer:
        for _ in range(n_steps):
            seen.append(set())
            trainer.step({"x": x}, y)
    return seen


def test_shards_run_on_the_pool_threads(always_parallel, monkeypatch):
    monkeypatch.setattr(trainer_module, "BACKEND", "threads")
    for names in _threads_of_steps(2):
        assert names and all(name.startswith("pippin-train") for name in names)


def test_shards_run_in_worker_processes(always_parallel, tmp_path):
    """With the default backend each step's shards are split between this process and a forked worker."""
    x, y = _data(4 * SHARD_SIZE)
    trainer, layers = _trainer(small_sound_net(), 2)
    conv = next(layer for layer in layers if layer.name == "conv2")
    original, log = conv.forward_train, tmp_path / "pids.txt"

    def spy(*args):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return original(*args)

    conv.forward_train = spy
    with trainer:
        trainer.step({"x": x}, y)
        trainer.step({"x": x}, y)
        workers = [p.pid for p in trainer._group.procs]
    pids = [int(v) for v in log.read_text().split()]
    assert len(pids) == 2 * 4  # 4 shards per step, each run once
    assert pids.count(os.getpid()) == 4 and set(pids) == {os.getpid(), *workers}
    assert all(not p.is_alive() for p in trainer._group.procs) if trainer._group else True


def test_a_failing_worker_raises_in_the_caller(always_parallel):
    x, y = _data(4 * SHARD_SIZE)
    trainer, layers = _trainer(small_sound_net(), 2)
    conv = next(layer for layer in layers if layer.name == "conv2")
    original, parent = conv.forward_train, os.getpid()

    def fail_in_worker(*args):
        if os.getpid() != parent:
            raise RuntimeError("boom in the worker")
        return original(*args)

    conv.forward_train = fail_in_worker
    with pytest.raises(PipelineError, match="boom in the worker"), trainer:
        trainer.step({"x": x}, y)


def test_small_networks_train_whole_batches_on_the_calling_thread():
    first, second = _threads_of_steps(2)  # the toy network: a few hundred values per example
    assert first == second == {threading.current_thread().name}
    x, y = _data(40)
    kw = dict(epochs=2, batch_size=16, learning_rate=0.01, random_state=7)
    one, two = (fit_network(small_sound_net(), x, y, n_jobs=n_jobs, **kw)[0] for n_jobs in (1, 2))
    assert one.SerializeToString() == two.SerializeToString()


def test_networks_that_mix_examples_run_whole():
    layers = layers_of(small_sound_net())
    assert can_shard(layers, exact_shapes=False)
    assert not can_shard(layers, exact_shapes=True)
    bn = next(layer for layer in layers if layer.kind == "batchnorm")
    bn.compute_mean_var = True
    assert not can_shard(layers, exact_shapes=False)


def test_shard_bounds_and_workers():
    assert shard_bounds(2 * SHARD_SIZE + 1) == [(0, SHARD_SIZE), (SHARD_SIZE, 2 * SHARD_SIZE),
                                                (2 * SHARD_SIZE, 2 * SHARD_SIZE + 1)]
    assert resolve_workers(3) == 3 and resolve_workers(None) >= 1 and resolve_workers(-1) == resolve_workers(None)
    with pytest.raises(ValueError, match="n_jobs=0"):
        resolve_workers(0)


def test_frozen_prefix_chunks_give_the_same_bytes_in_forked_children():
    """``Trainer.frozen_prefix`` spreads its chunks over forked children with n_jobs > 1: same bytes as inline."""
    spec = _updatable_conv_net()
    x, _ = _data(150)
    out = []
    for n_jobs in (1, 2, 3):
        layers = layers_of(spec)
        trainer = Trainer(layers, trainable={"fc1": ("weights", "bias")}, loss_kind="categoricalCrossEntropyLossLayer",
                          loss_input="probs", optimizer=SGD(learning_rate=0.0), n_jobs=n_jobs)
        with trainer:
            out.append(trainer.frozen_prefix({"x": x}, chunk=16))
    assert list(out[0]) == ["f"] and out[0]["f"].shape[0] == 150
    for other in out[1:]:
        assert np.array_equal(other["f"], out[0]["f"])


@pytest.mark.parametrize("odd", [False, True])
def test_batchnorm_relu_maxpool_pass_equals_the_layers(odd):
    """bn1 -> relu1 -> pool1 runs as one pass (pooled output and argmax only) when the height and width
    are even, and as separate layers otherwise; both give the serial pass's gradients."""
    x, y = _data(2 * SHARD_SIZE + 3, seed=5)
    spec = small_sound_net(height=11 if odd else 12)
    x = x[:, :, :11] if odd else x
    trainer, _ = _trainer(spec, 1)
    assert trainer.runner.pools["bn1"].name == "pool1"
    with trainer:
        _, caches = trainer.runner.forward([{"x": x[:SHARD_SIZE]}], train=True)
    assert isinstance(caches[0]["pool1"], PooledKept) is not odd
    p_ser, g_ser, _ = _serial_gradients(spec, x, y)
    p_par, g_par, _ = _sharded_gradients(spec, x, y, n_jobs=2)
    np.testing.assert_allclose(p_par.reshape(len(y), -1), p_ser.reshape(len(y), -1), rtol=1e-5, atol=1e-6)
    for layer, params in g_ser.items():
        for name, value in params.items():
            np.testing.assert_allclose(g_par[layer][name], value, rtol=2e-4, atol=2e-6, err_msg=f"{layer}.{name}")


@pytest.mark.parametrize("sizes", [(12, 12, 5), (5, 12)])  # a later batch larger than the first: through the pipes
def test_worker_processes_get_each_batch_from_shared_memory_or_pipes(always_parallel, sizes):
    x, y = _data(sum(sizes), seed=6)
    results = []
    for n_jobs in (1, 2):
        trainer, layers = _trainer(small_sound_net(), n_jobs)
        trainer.optimizer = SGD(learning_rate=0.1)
        with trainer:
            start, losses = 0, []
            for size in sizes:
                losses.append(trainer.step({"x": x[start:start + size]}, y[start:start + size]))
                start += size
            if n_jobs == 2 and trainer_module.can_fork():
                assert trainer._group is not None and set(trainer._shared) == {"x"}
                assert trainer._shared["x"].shape == (sizes[0], 1, 12, 8)
        results.append((losses, {(l.name, k): v.copy() for l in layers for k, v in l.params.items()}))
    assert results[0][0] == results[1][0]
    for key, value in results[0][1].items():
        assert np.array_equal(results[1][1][key], value), key
