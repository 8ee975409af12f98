"""Running ``treeEnsembleRegressor`` and ``treeEnsembleClassifier`` models.

Definitions (Core ML's ``TreeEnsemble.proto``):

- each tree (``treeId``) starts at its root, the one node no other node of the
  tree names as a child; a branch node compares input column
  ``branchFeatureIndex`` with ``branchFeatureValue`` by its ``nodeBehavior``
  (``<=``, ``<``, ``>=``, ``>``, ``==``, ``!=``) and goes to ``trueChildNodeId``
  when the comparison holds, else to ``falseChildNodeId``; a NaN input goes to the
  true child when ``missingValueTracksTrueChild``, else to the false child;
- a leaf adds each ``evaluationInfo`` value to output dimension
  ``evaluationIndex``; the scores [shape=(n_examples, numPredictionDimensions)]
  are ``basePredictionValue`` plus the sum over all trees;
- transforms: ``NoTransform`` (the scores), ``Regression_Logistic``
  (``1 / (1 + exp(-s))`` per dimension), ``Classification_SoftMax`` (softmax over
  the dimensions), ``Classification_SoftMaxWithZeroClassReference`` (softmax over
  ``[0, s]``: the first label is a reference scored 0);
- classifier with one dimension and two labels: the transformed score is the
  probability of the second label and ``1 - score`` that of the first (the
  softmax transforms then act as the logistic one); otherwise one dimension per
  label (``n_classes - 1`` under the zero-class reference) and, with
  ``NoTransform``, the summed scores are the probabilities as stored (a random
  forest that stores each tree's class fractions sums to ``n_trees``);
- the predicted label has the largest probability (the first on ties).

All trees are walked at once: one gather per level, vectorized over the batch.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax

from ...spec.errors import SpecError
from .classic import ClassicModel, check_finite, read_class_labels
from .features import feature_kind
from .model import register_kind

__all__ = ["TreeEnsembleRegressorModel", "TreeEnsembleClassifierModel", "Forest"]

_LEAF = 6
_COMPARE = {0: np.less_equal, 1: np.less, 2: np.greater_equal, 3: np.greater, 4: np.equal, 5: np.not_equal}
# _TRUTH[mode, sign(value - threshold) + 1]: whether a branch of that mode goes to its true child
_TRUTH = np.array([[c(d, 0) for d in (-1, 0, 1)] for c in _COMPARE.values()] + [[False] * 3], dtype=bool)
_BLOCK = 1 << 22  # examples x trees x dimensions per gather block


class Forest:
    """The flattened trees of a ``TreeEnsembleParameters`` message, checked at build.

    Attributes
    ----------
    roots : np.ndarray [shape=(n_trees,)]
        Flat index of each tree's root.
    feature, threshold, mode, true_child, false_child, missing_true : np.ndarray [shape=(n_nodes,)]
        Per flat node; leaves point to themselves.
    leaf_values : np.ndarray [shape=(n_nodes, n_dimensions)]
    base : np.ndarray [shape=(n_dimensions,)]
    depth : int
        The longest root-to-leaf path, in branches.
    """

    def __init__(self, params, *, n_features: int | None, where: str):
        nodes = list(params.nodes)
        self.n_dimensions = int(params.numPredictionDimensions)
        if self.n_dimensions < 1:
            raise SpecError("numPredictionDimensions is 0, expected at least 1",
                            where=f"{where}.numPredictionDimensions")
        if not nodes:
            raise SpecError("no nodes, expected at least one tree", where=f"{where}.nodes")
        base = np.array(list(params.basePredictionValue), dtype=np.float64)
        if base.size not in (0, self.n_dimensions):
            raise SpecError(f"{base.size} values, expected numPredictionDimensions ({self.n_dimensions}) or none",
                            where=f"{where}.basePredictionValue")
        self.base = check_finite(base if base.size else np.zeros(self.n_dimensions),
                                 where=f"{where}.basePredictionValue")
        index = {}
        for i, node in enumerate(nodes):
            key = (int(node.treeId), int(node.nodeId))
            if key in index:
                raise SpecError(f"tree {key[0]} has node {key[1]} twice", where=f"{where}.nodes[{i}]")
            index[key] = i
        n = len(nodes)
        self.feature = np.zeros(n, dtype=np.int64)
        self.threshold = np.zeros(n)
        self.mode = np.full(n, _LEAF, dtype=np.int64)
        self.true_child = np.arange(n)
        self.false_child = np.arange(n)
        self.missing_true = np.zeros(n, dtype=bool)
        self.leaf_values = np.zeros((n, self.n_dimensions))
        children = set()
        for i, node in enumerate(nodes):
            self._read_node(i, node, index, children, n_features, f"{where}.nodes[{i}]")
        trees = sorted({tree for tree, _ in index})
        roots = {tree: [i for (t, _), i in index.items() if t == tree and i not in children] for tree in trees}
        for tree, found in roots.items():
            if len(found) != 1:
                raise SpecError(f"tree {tree} has {len(found)} root nodes (nodes no other names as a child), "
                                "expected 1", where=f"{where}.nodes")
        self.roots = np.array([roots[t][0] for t in trees], dtype=np.int64)
        self.depth = self._check_acyclic(n, where)
        self.children = np.stack([self.false_child, self.true_child], axis=1)  # [node, went true]
        branch_modes = np.unique(self.mode[self.mode != _LEAF])
        self.single_mode = int(branch_modes[0]) if branch_modes.size == 1 else None

    def _read_node(self, i, node, index, children, n_features, where):
        mode = int(node.nodeBehavior)
        if mode == _LEAF:
            for k, info in enumerate(node.evaluationInfo):
                if info.evaluationIndex >= self.n_dimensions:
                    raise SpecError(f"evaluationIndex {info.evaluationIndex}, expected below "
                                    f"numPredictionDimensions ({self.n_dimensions})",
                                    where=f"{where}.evaluationInfo[{k}]")
                if not np.isfinite(info.evaluationValue):
                    raise SpecError(f"evaluationValue {info.evaluationValue!r} is not finite",
                                    where=f"{where}.evaluationInfo[{k}]")
                self.leaf_values[i, info.evaluationIndex] += info.evaluationValue
            return
        if mode not in _COMPARE:
            raise SpecError(f"unknown nodeBehavior {mode}", where=f"{where}.nodeBehavior")
        if n_features is not None and node.branchFeatureIndex >= n_features:
            raise SpecError(f"branchFeatureIndex {node.branchFeatureIndex}, expected below the "
                            f"{n_features} input features", where=f"{where}.branchFeatureIndex")
        if np.isnan(node.branchFeatureValue):
            raise SpecError("branchFeatureValue is NaN", where=f"{where}.branchFeatureValue")
        for field in ("trueChildNodeId", "falseChildNodeId"):
            key = (int(node.treeId), int(getattr(node, field)))
            if key not in index or index[key] == i:
                raise SpecError(f"{field} {key[1]} is not another node of tree {key[0]}", where=f"{where}.{field}")
            children.add(index[key])
        self.mode[i] = mode
        self.feature[i] = node.branchFeatureIndex
        self.threshold[i] = node.branchFeatureValue
        self.true_child[i] = index[(int(node.treeId), int(node.trueChildNodeId))]
        self.false_child[i] = index[(int(node.treeId), int(node.falseChildNodeId))]
        self.missing_true[i] = node.missingValueTracksTrueChild

    def _check_acyclic(self, n, where) -> int:
        """Walk from the roots level by level; a node reached twice means a cycle or a shared child."""
        seen = np.zeros(n, dtype=bool)
        level, depth = self.roots, 0
        while level.size:
            if seen[level].any() or np.unique(level).size != level.size:
                raise SpecError("a node is reached twice (a cycle, or a child shared by two branches)",
                                where=f"{where}.nodes")
            seen[level] = True
            branches = level[self.mode[level] != _LEAF]
            if branches.size:
                depth += 1
            level = np.concatenate([self.true_child[branches], self.false_child[branches]])
        return depth

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Base plus the sum of every tree's leaf values [shape=(n_examples, n_dimensions)].

        All (example, tree) walks advance together, one gather per level; a walk leaves the
        working set when it reaches a leaf.
        """
        n_examples, n_trees = x.shape[0], self.roots.size
        out = np.empty((n_examples, self.n_dimensions))
        step = max(1, _BLOCK // max(1, n_trees * self.n_dimensions))
        for start in range(0, n_examples, step):
            xb = np.ascontiguousarray(x[start:start + step])
            leaves = self._walk(xb)
            out[start:start + step] = self.leaf_values[leaves].reshape(xb.shape[0], n_trees, -1).sum(axis=1)
        return out + self.base

    def _walk(self, xb: np.ndarray) -> np.ndarray:
        """The leaf each (example, tree) walk ends in, flat [shape=(n_examples * n_trees,)]."""
        n_trees = self.roots.size
        node = np.tile(self.roots, xb.shape[0])
        walks = np.flatnonzero(self.mode[node] != _LEAF)
        here = node[walks]
        offset = (walks // n_trees) * xb.shape[1]  # where each walk's example starts in the flat input
        flat_x = xb.ravel()
        has_nan = bool(np.isnan(xb).any())
        for _ in range(self.depth):
            if not walks.size:
                break
            value = flat_x[offset + self.feature[here]]
            if self.single_mode is not None:
                go_true = _COMPARE[self.single_mode](value, self.threshold[here])
            else:
                threshold = self.threshold[here]
                order = (value > threshold).astype(np.int8) - (value < threshold)  # -1, 0, +1 (NaN: 0)
                go_true = _TRUTH[self.mode[here], order + 1]
            if has_nan:
                missing = np.isnan(value)
                go_true[missing] = self.missing_true[here[missing]]
            here = self.children[here, go_true.view(np.int8)]
            done = self.mode[here] == _LEAF
            if done.any():
                node[walks[done]] = here[done]
                keep = ~done
                walks, here, offset = walks[keep], here[keep], offset[keep]
        return node


def _n_features(model) -> int | None:
    total = 0
    for description in model.input_descriptions.values():
        kind = feature_kind(description)
        if kind in ("doubleType", "int64Type"):
            total += 1
        elif kind == "multiArrayType" and description.type.multiArrayType.shape:
            total += int(np.prod(list(description.type.multiArrayType.shape)))
        else:
            return None
    return total


def _transform_name(message) -> str:
    return {0: "NoTransform", 1: "Classification_SoftMax", 2: "Regression_Logistic",
            3: "Classification_SoftMaxWithZeroClassReference"}.get(int(message.postEvaluationTransform), "")


@register_kind("treeEnsembleRegressor")
class TreeEnsembleRegressorModel(ClassicModel):
    """A loaded tree ensemble regressor (``forest``: the flattened trees)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.treeEnsembleRegressor
        self.n_features = _n_features(self)
        self.forest = Forest(message.treeEnsemble, n_features=self.n_features, where=f"{self.prefix}.treeEnsemble")
        self.transform = _transform_name(message)
        if not self.transform:
            raise SpecError(f"unknown transform {message.postEvaluationTransform}",
                            where=f"{self.prefix}.postEvaluationTransform")

    def _compute(self, x: np.ndarray) -> np.ndarray:
        s = self.forest.scores(x)
        if self.transform == "Regression_Logistic":
            return expit(s)
        if self.transform == "Classification_SoftMax":
            return softmax(s, axis=1)
        if self.transform == "Classification_SoftMaxWithZeroClassReference":
            return softmax(np.concatenate([np.zeros((s.shape[0], 1)), s], axis=1), axis=1)[:, 1:]
        return s


@register_kind("treeEnsembleClassifier")
class TreeEnsembleClassifierModel(ClassicModel):
    """A loaded tree ensemble classifier (see the module docstring for the probability rules)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.treeEnsembleClassifier
        self.n_features = _n_features(self)
        self.forest = Forest(message.treeEnsemble, n_features=self.n_features, where=f"{self.prefix}.treeEnsemble")
        self.class_labels = read_class_labels(message, where=self.prefix)
        self.transform = _transform_name(message)
        if not self.transform:
            raise SpecError(f"unknown transform {message.postEvaluationTransform}",
                            where=f"{self.prefix}.postEvaluationTransform")
        k, d = self.class_labels.size, self.forest.n_dimensions
        self.binary = k == 2 and d == 1
        zero_reference = self.transform == "Classification_SoftMaxWithZeroClassReference"
        expected = k - 1 if zero_reference else k
        if not self.binary and d != expected:
            raise SpecError(f"numPredictionDimensions is {d} for {k} class labels, expected {expected}"
                            + (" (or 1 for two labels)" if k == 2 else ""),
                            where=f"{self.prefix}.treeEnsemble.numPredictionDimensions")

    def _compute(self, x: np.ndarray):
        s = self.forest.scores(x)
        if self.binary:
            p1 = s[:, 0] if self.transform == "NoTransform" else expit(s[:, 0])
            probabilities = np.stack([1.0 - p1, p1], axis=1)
        elif self.transform == "Classification_SoftMax":
            probabilities = softmax(s, axis=1)
        elif self.transform == "Classification_SoftMaxWithZeroClassReference":
            probabilities = softmax(np.concatenate([np.zeros((s.shape[0], 1)), s], axis=1), axis=1)
        elif self.transform == "Regression_Logistic":
            probabilities = expit(s)
        else:
            probabilities = s
        return np.argmax(probabilities, axis=1), probabilities
