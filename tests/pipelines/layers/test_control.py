"""branch, loop (for / while / joint), loopBreak, loopContinue, copy."""

from __future__ import annotations

import numpy as np

from nn_helpers import NeuralNetworkBuilder, close, load, nd_builder


def _sub():
    return NeuralNetworkBuilder(nn_spec=None, disable_rank5_shape_mapping=True)


def _model(b):
    return load(b)


def test_branch_splits_the_batch():
    b = nd_builder({"x": (3,), "cond": (1,)})
    branch = b.add_branch("br", "cond")
    if_b = NeuralNetworkBuilder(nn_spec=branch.branch.ifBranch, disable_rank5_shape_mapping=True)
    if_b.add_activation("double", "LINEAR", "x", "y", params=[2.0, 0.0])
    else_b = NeuralNetworkBuilder(nn_spec=branch.branch.elseBranch, disable_rank5_shape_mapping=True)
    else_b.add_activation("neg", "LINEAR", "x", "y", params=[-1.0, 0.0])
    model = _model(b)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    cond = np.array([[1], [0], [0.5], [1e-7]], np.float32)
    y = model.predict_batch({"x": x, "cond": cond})["y"]
    close(y, np.where(np.abs(cond) > 1e-6, 2 * x, -x))
    close(model.predict_batch({"x": x, "cond": np.ones((4, 1))})["y"], 2 * x)


def test_for_loop_vectorized():
    b = nd_builder({"x": (2,)})
    b.add_copy("init", "x", "y")
    loop = b.add_loop("loop", max_iterations=5)
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_activation("step", "LINEAR", "y", "y_next", params=[1.0, 3.0])
    body.add_copy("update", "y_next", "y")
    x = np.array([[1, 2], [3, 4]], np.float32)
    close(_model(b).predict_batch({"x": x})["y"], x + 15)


def test_while_loop_with_break_and_continue_per_example():
    # y starts at x; while y < 10: y += 1; if y == 4: continue (skips the +100); if y >= 7: break; y_extra...
    b = nd_builder({"x": (1,)}, outputs=("y",))
    b.add_copy("init", "x", "y")
    loop = b.add_loop("loop", condition="c", condition_network=None, body_network=None)
    cond = NeuralNetworkBuilder(nn_spec=loop.loop.conditionNetwork, disable_rank5_shape_mapping=True)
    cond.add_less_than("lt", ["y"], "c", alpha=10.0)
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_activation("inc", "LINEAR", "y", "y1", params=[1.0, 1.0])
    body.add_copy("set", "y1", "y")
    body.add_greater_than("ge", ["y"], "stop", alpha=7.0, use_greater_than_equal=True)
    br = body.add_branch("br", "stop")
    brk = NeuralNetworkBuilder(nn_spec=br.branch.ifBranch, disable_rank5_shape_mapping=True)
    brk.add_loop_break("brk")
    body.add_equal("eq", ["y"], "is4", alpha=4.0)
    br2 = body.add_branch("br2", "is4")
    cont = NeuralNetworkBuilder(nn_spec=br2.branch.ifBranch, disable_rank5_shape_mapping=True)
    cont.add_loop_continue("cont")
    body.add_activation("plus", "LINEAR", "y", "y2", params=[1.0, 0.5])
    body.add_copy("set2", "y2", "y")

    def reference(v):
        while v < 10:
            v += 1
            if v >= 7:
                break
            if v == 4:
                continue
            v += 0.5
        return v

    x = np.array([[0.0], [2.0], [3.0], [8.5], [12.0]], np.float32)
    y = _model(b).predict_batch({"x": x})["y"]
    close(y, [[reference(float(v))] for v in x[:, 0]])


def test_loop_count_from_input():
    b = nd_builder({"x": (1,), "n": (1,)})
    b.add_copy("init", "x", "y")
    loop = b.add_loop("loop", input_name="n")
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_activation("dbl", "LINEAR", "y", "y1", params=[2.0, 0.0])
    body.add_copy("set", "y1", "y")
    x = np.ones((3, 1), np.float32)
    n = np.array([[0], [1], [4]], np.float32)
    close(_model(b).predict_batch({"x": x, "n": n})["y"], [[1], [2], [16]])
