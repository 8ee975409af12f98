"""Control flow: branch, loop, loopBreak, loopContinue, copy.

Branch and loop run nested networks over the enclosing network's blob namespace
(``run_control`` instead of ``forward``). A branch splits the batch by its condition
and runs each branch on its examples; a loop whose iteration count is the same for
every example (a plain for loop without break/continue) runs once over the whole batch,
otherwise each example runs its own loop (iteration counts differ per example).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PipelineError
from .base import Layer, register
from .network import build_layers, run_layers

MAX_WHILE_ITERATIONS = 100_000


class LoopSignal(Exception):
    """Raised by loopBreak / loopContinue; caught by the enclosing loop."""

    def __init__(self, action: str):
        super().__init__(action)
        self.action = action


def _truth(blob: np.ndarray) -> np.ndarray:
    """Per-example truth of a scalar condition blob: ``|value| > 1e-6``."""
    return np.abs(np.asarray(blob).reshape(blob.shape[0], -1)[:, 0]) > 1e-6


def _subset(blobs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: value[index] for name, value in blobs.items()}


def merge_groups(layer: Layer, blobs: dict, groups: list[tuple[np.ndarray, dict, dict]], n: int) -> None:
    """Write back the blobs each group of examples produced or changed.

    ``groups`` holds ``(example indices, the group's blobs before, the group's blobs after)``.
    A blob that only some examples produced (a temporary of a branch not every example
    took) is left out, as it would not exist for the others.
    """
    changed = set()
    for _, before, after in groups:
        changed |= {k for k, v in after.items() if k not in before or v is not before[k]}
    for name in changed:
        parts = []
        for index, _, after in groups:
            if name in after:
                parts.append((index, after[name]))
            elif name in blobs:
                parts.append((index, blobs[name][index]))
        if sum(len(index) for index, _ in parts) < n:
            continue
        shapes = {p.shape[1:] for _, p in parts}
        if len(shapes) > 1:
            raise PipelineError(f"blob {name!r} has different shapes across examples {sorted(shapes)}",
                                where=layer.where, hint="run these examples one at a time")
        out = np.empty((n,) + shapes.pop(), dtype=np.float32)
        for index, part in parts:
            out[index] = part
        blobs[name] = out


def run_checked_once(layers: list[Layer], blobs: dict, *, optional, checked: bool) -> dict:
    """``run_layers``, or after a first checked run of the same layers (``checked``) the same walk
    without the per-layer checks: inputs looked up directly, ``forward`` instead of ``__call__``.

    A loop body runs its layers once per iteration; the first iteration checks that every blob
    exists and every output keeps the layer contract, and later ones (the same layers on the
    blobs the first one made) save the checks' microseconds per layer.
    """
    if not checked:
        return run_layers(layers, blobs, optional=optional)
    for layer in layers:
        if getattr(layer, "controls_flow", False):
            layer.run_control(blobs, optional=optional)
            continue
        inputs = [blobs.get(name) for name in layer.inputs]
        try:
            outputs = layer.forward(*inputs)
        except LoopSignal:
            raise
        except Exception:  # noqa: BLE001  (rerun checked: the same error, named with the layer's place)
            return run_layers(layers[layers.index(layer):], blobs, optional=optional)
        if not layer.inputs and blobs:  # a layer without inputs makes one example: repeat it (as run_layers)
            n = next(iter(blobs.values())).shape[0]
            outputs = tuple(np.repeat(o, n, axis=0) if o.shape[0] == 1 and n != 1 else o for o in outputs)
        for name, value in zip(layer.outputs, outputs):
            blobs[name] = value
    return blobs


def _nested(layer: Layer, network: Any, field: str) -> list[Layer]:
    return build_layers(network.layers, prefix=f"{layer.where}.{layer.kind}.{field}",
                        exact_shapes=layer.context.exact_shapes, spec_version=layer.context.spec_version,
                        fast=layer.context.fast)


def _has_signal(network: Any) -> bool:
    for spec in network.layers:
        kind = spec.WhichOneof("layer")
        if kind in ("loopBreak", "loopContinue"):
            return True
        if kind == "branch" and (_has_signal(spec.branch.ifBranch) or _has_signal(spec.branch.elseBranch)):
            return True
    return False


@register
class Branch(Layer):
    """Run ``ifBranch`` where ``|condition| > 1e-6``, else ``elseBranch`` (if any)."""

    kind = "branch"
    controls_flow = True

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.if_layers = _nested(self, spec.branch.ifBranch, "ifBranch")
        self.else_layers = _nested(self, spec.branch.elseBranch, "elseBranch")

    def run_control(self, blobs: dict, *, optional=frozenset()) -> None:
        truth = _truth(blobs[self.inputs[0]])
        if truth.all() or not truth.any():
            run_layers(self.if_layers if truth.all() else self.else_layers, blobs, optional=optional)
            return
        groups = []
        for mask, layers in ((truth, self.if_layers), (~truth, self.else_layers)):
            index = np.flatnonzero(mask)
            before = _subset(blobs, index)
            groups.append((index, before, run_layers(layers, dict(before), optional=optional)))
        merge_groups(self, blobs, groups, truth.size)


@register
class Loop(Layer):
    """For loop (``maxLoopIterations`` or the input's value), while loop (``conditionNetwork``
    producing ``conditionVar``), or both; loopBreak and loopContinue inside the body."""

    kind = "loop"
    controls_flow = True

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.loop
        self.body = _nested(self, p.bodyNetwork, "bodyNetwork")
        self.condition = _nested(self, p.conditionNetwork, "conditionNetwork") if p.conditionVar else None
        self.condition_var = p.conditionVar
        self.signals = _has_signal(p.bodyNetwork)
        #: later iterations skip the per-layer checks the first one made (``run_checked_once``)
        self.fast = context.fast

    def _max_iterations(self, blobs) -> np.ndarray | None:
        if self.inputs:
            value = blobs[self.inputs[0]]
            return np.rint(value.reshape(value.shape[0], -1)[:, 0]).astype(int)
        limit = int(self.p.maxLoopIterations)
        return None if (limit == 0 and self.condition is not None) else np.array([limit])

    def _run(self, blobs: dict, limit: int | None, optional, *, iteration: int = 0, checked: bool = False) -> dict:
        """Run the loop on ``blobs`` from ``iteration`` (``checked``: its condition already came out true)."""
        while True:
            if self.condition is not None and not checked:
                run_checked_once(self.condition, blobs, optional=optional, checked=self.fast and iteration > 0)
                if not _truth(blobs[self.condition_var]).all():
                    break
            checked = False
            if limit is not None and iteration >= limit:
                break
            if limit is None and iteration >= MAX_WHILE_ITERATIONS:
                raise PipelineError(f"while loop ran {MAX_WHILE_ITERATIONS} iterations without its condition "
                                    f"{self.condition_var!r} turning false", where=self.where)
            iteration += 1
            try:
                run_checked_once(self.body, blobs, optional=optional, checked=self.fast and iteration > 1)
            except LoopSignal as signal:
                if signal.action == "break":
                    break
        return blobs

    def run_control(self, blobs: dict, *, optional=frozenset()) -> None:
        n = next(iter(blobs.values())).shape[0] if blobs else 1
        limits = self._max_iterations(blobs)
        same = limits is None or len(set(limits.tolist())) == 1
        if n == 1 or (same and self.condition is None and not self.signals):
            self._run(blobs, int(limits[0]) if limits is not None else None, optional)
            return
        start, checked = 0, False
        if same and not self.signals:
            start, checked = self._run_together(blobs, None if limits is None else int(limits[0]), optional)
            if start is None:
                return
        groups = []
        for i in range(n):  # iteration counts differ per example: each example runs its own loop
            limit = None if limits is None else int(limits[min(i, limits.size - 1)])
            before = _subset(blobs, np.array([i]))
            if checked is not False and not checked[i]:  # its condition already turned false
                after = before
            else:
                after = self._run(dict(before), limit, optional, iteration=start, checked=checked is not False)
            groups.append((np.array([i]), before, after))
        merge_groups(self, blobs, groups, n)

    def _run_together(self, blobs: dict, limit: int | None, optional) -> tuple:
        """Run a while loop (without break/continue) on the whole batch for as long as its condition
        is the same for every example: ``(None, None)`` when it ended for all of them together,
        else ``(iteration, condition truth per example)`` where the examples part ways."""
        iteration = 0
        while True:
            run_checked_once(self.condition, blobs, optional=optional, checked=self.fast and iteration > 0)
            truth = _truth(blobs[self.condition_var])
            if truth.any() and not truth.all():
                return iteration, truth
            if not truth.any() or (limit is not None and iteration >= limit):
                return None, None
            if limit is None and iteration >= MAX_WHILE_ITERATIONS:
                raise PipelineError(f"while loop ran {MAX_WHILE_ITERATIONS} iterations without its condition "
                                    f"{self.condition_var!r} turning false", where=self.where)
            iteration += 1
            run_checked_once(self.body, blobs, optional=optional, checked=self.fast and iteration > 1)


@register
class LoopBreak(Layer):
    """Terminate the enclosing loop."""

    kind = "loopBreak"

    def forward(self):
        raise LoopSignal("break")


@register
class LoopContinue(Layer):
    """Skip the rest of this iteration of the enclosing loop."""

    kind = "loopContinue"

    def forward(self):
        raise LoopSignal("continue")


@register
class Copy(Layer):
    """Copy the input blob to the output (which may overwrite an existing blob)."""

    kind = "copy"

    def forward(self, x):
        return (np.array(x, copy=True),)
