"""Running ``supportVectorRegressor`` and ``supportVectorClassifier`` models (libsvm's rules).

Definitions (Core ML's ``SVM.proto``, which stores a libsvm model):

- kernels: linear ``x.s``; RBF ``exp(-gamma |x - s|^2)``; polynomial
  ``(gamma x.s + c) ^ degree``; sigmoid ``tanh(gamma x.s + c)``;
- support vectors are dense, or sparse with libsvm's 1-based feature indices
  (index ``i`` is input column ``i - 1``);
- regressor: ``y = sum_j alpha_j K(x, s_j) - rho``;
- classifier: one-vs-one over the class pairs ``(i, j)``, ``i < j`` in label order.
  The support vectors are grouped by class (``numberOfSupportVectorsPerClass``);
  ``coefficients`` has ``n_classes - 1`` rows and the pair's decision value is
  ``sum over s in class i of coefficients[j - 1][s] K(x, s) + sum over s in
  class j of coefficients[i][s] K(x, s) - rho[pair]``; a positive value votes
  for ``i``, otherwise for ``j``;
- without ``probA``/``probB`` the predicted label has the most votes (the
  first in label order on ties) and the probabilities output (if declared) is
  each label's share of the votes;
- with them (libsvm's probability model): pairwise probabilities
  ``r_ij = 1 / (1 + exp(A dec + B))`` clipped to ``[1e-7, 1 - 1e-7]``, coupled
  into class probabilities by libsvm's iterative method (``couple``), or for
  two classes ``p = (r_01, r_10)`` as they are; the predicted label is the most
  probable one.
"""

from __future__ import annotations

import numpy as np

from ...spec.errors import SpecError
from .classic import ClassicModel, check_finite, read_class_labels
from .model import register_kind

__all__ = ["SupportVectorRegressorModel", "SupportVectorClassifierModel", "kernel_matrix", "couple"]

_MIN_PROB = 1e-7  # fact: libsvm svm.cpp (svm_predict_probability: min_prob)


def read_kernel(kernel, *, where: str):
    """``(name, gamma, c, degree)`` of a ``Kernel`` message; raises ``SpecError`` if unset or not finite."""
    name = kernel.WhichOneof("kernel")
    if name is None:
        raise SpecError("no kernel set, expected linearKernel, rbfKernel, polyKernel or sigmoidKernel", where=where)
    params = getattr(kernel, name)
    gamma = float(getattr(params, "gamma", 0.0))
    c = float(getattr(params, "c", 0.0))
    degree = int(getattr(params, "degree", 1))
    if not np.isfinite([gamma, c]).all():
        raise SpecError(f"gamma={gamma!r} and c={c!r}, expected finite values", where=f"{where}.{name}")
    if name == "polyKernel" and degree < 0:
        raise SpecError(f"degree is {degree}, expected a non-negative integer", where=f"{where}.{name}.degree")
    return name, gamma, c, degree


def kernel_matrix(x: np.ndarray, vectors: np.ndarray, kernel) -> np.ndarray:
    """``K[e, j] = K(x_e, s_j)`` [shape=(n_examples, n_vectors)] for ``kernel = (name, gamma, c, degree)``."""
    name, gamma, c, degree = kernel
    dots = x @ vectors.T
    if name == "linearKernel":
        return dots
    if name == "rbfKernel":
        squared = (x * x).sum(axis=1)[:, None] - 2.0 * dots + (vectors * vectors).sum(axis=1)[None, :]
        return np.exp(-gamma * np.maximum(squared, 0.0))
    if name == "polyKernel":
        return (gamma * dots + c) ** degree
    return np.tanh(gamma * dots + c)


def read_support_vectors(message, *, where: str) -> tuple[np.ndarray, int]:
    """``(vectors [shape=(n_vectors, n_features)], n_features)``: dense, or sparse made dense."""
    which = message.WhichOneof("supportVectors")
    if which == "denseSupportVectors":
        rows = [list(v.values) for v in message.denseSupportVectors.vectors]
        width = len(rows[0]) if rows else 0
        for i, row in enumerate(rows):
            if len(row) != width:
                raise SpecError(f"{len(row)} values, expected {width} (the length of vectors[0])",
                                where=f"{where}.denseSupportVectors.vectors[{i}]")
        vectors = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    elif which == "sparseSupportVectors":
        sparse = message.sparseSupportVectors.vectors
        width = 0
        for i, vector in enumerate(sparse):
            for node in vector.nodes:
                if node.index < 1:
                    raise SpecError(f"index {node.index}, expected 1 or more (libsvm counts from 1)",
                                    where=f"{where}.sparseSupportVectors.vectors[{i}]")
                width = max(width, int(node.index))
        vectors = np.zeros((len(sparse), width))
        for i, vector in enumerate(sparse):
            for node in vector.nodes:
                vectors[i, node.index - 1] = node.value
    else:
        raise SpecError("no support vectors, expected denseSupportVectors or sparseSupportVectors", where=where)
    check_finite(vectors, where=f"{where}.{which}")
    return vectors, (width if which == "denseSupportVectors" else None)


def _fit_width(x: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Sparse vectors only reach their largest index: pad (or cut) the vectors to the input's width."""
    if vectors.shape[1] == x.shape[1]:
        return vectors
    if vectors.shape[1] < x.shape[1]:
        return np.pad(vectors, ((0, 0), (0, x.shape[1] - vectors.shape[1])))
    return vectors[:, :x.shape[1]]


@register_kind("supportVectorRegressor")
class SupportVectorRegressorModel(ClassicModel):
    """A loaded epsilon/nu support vector regressor."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.supportVectorRegressor
        self.kernel = read_kernel(message.kernel, where=f"{self.prefix}.kernel")
        self.vectors, self.n_features = read_support_vectors(message, where=self.prefix)
        self.alpha = check_finite(np.array(list(message.coefficients.alpha), dtype=np.float64),
                                  where=f"{self.prefix}.coefficients.alpha")
        if self.alpha.size != self.vectors.shape[0]:
            raise SpecError(f"{self.alpha.size} values, expected one per support vector ({self.vectors.shape[0]})",
                            where=f"{self.prefix}.coefficients.alpha")
        self.rho = float(check_finite(np.array([message.rho]), where=f"{self.prefix}.rho")[0])

    def _compute(self, x: np.ndarray) -> np.ndarray:
        k = kernel_matrix(x, _fit_width(x, self.vectors), self.kernel)
        return (k @ self.alpha - self.rho)[:, None]


@register_kind("supportVectorClassifier")
class SupportVectorClassifierModel(ClassicModel):
    """A loaded one-vs-one support vector classifier (see the module docstring)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.supportVectorClassifier
        where = self.prefix
        self.kernel = read_kernel(message.kernel, where=f"{where}.kernel")
        self.vectors, self.n_features = read_support_vectors(message, where=where)
        self.class_labels = read_class_labels(message, where=where)
        k = self.class_labels.size
        if k < 2:
            raise SpecError(f"{k} class label, expected at least 2", where=f"{where}.ClassLabels")
        counts = np.array(list(message.numberOfSupportVectorsPerClass), dtype=np.int64)
        if counts.size != k or (counts < 0).any() or counts.sum() != self.vectors.shape[0]:
            raise SpecError(f"{counts.tolist()}, expected {k} non-negative counts adding up to the "
                            f"{self.vectors.shape[0]} support vectors", where=f"{where}.numberOfSupportVectorsPerClass")
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        rows = [np.array(list(c.alpha), dtype=np.float64) for c in message.coefficients]
        if len(rows) != k - 1 or any(r.size != self.vectors.shape[0] for r in rows):
            raise SpecError(f"{len(rows)} rows of sizes {[r.size for r in rows]}, expected {k - 1} rows of "
                            f"{self.vectors.shape[0]} (one per support vector)", where=f"{where}.coefficients")
        self.coefficients = check_finite(np.array(rows).reshape(k - 1, -1), where=f"{where}.coefficients")
        n_pairs = k * (k - 1) // 2
        self.rho = check_finite(np.array(list(message.rho), dtype=np.float64), where=f"{where}.rho")
        if self.rho.size != n_pairs:
            raise SpecError(f"{self.rho.size} values, expected one per class pair ({n_pairs})", where=f"{where}.rho")
        self.prob_a = np.array(list(message.probA), dtype=np.float64)
        self.prob_b = np.array(list(message.probB), dtype=np.float64)
        self.probabilistic = self.prob_a.size > 0 or self.prob_b.size > 0
        for name, values in (("probA", self.prob_a), ("probB", self.prob_b)):
            if self.probabilistic and values.size != n_pairs:
                raise SpecError(f"{values.size} values, expected one per class pair ({n_pairs})",
                                where=f"{where}.{name}")
            check_finite(values, where=f"{where}.{name}")

    def decision_values(self, x: np.ndarray) -> np.ndarray:
        """libsvm's one-vs-one decision values [shape=(n_examples, n_pairs)], pairs in ``(i, j)``, i < j order."""
        kmat = kernel_matrix(x, _fit_width(x, self.vectors), self.kernel)
        k, s = self.class_labels.size, self.starts
        values = []
        for i in range(k):
            for j in range(i + 1, k):
                dec = kmat[:, s[i]:s[i + 1]] @ self.coefficients[j - 1, s[i]:s[i + 1]]
                dec += kmat[:, s[j]:s[j + 1]] @ self.coefficients[i, s[j]:s[j + 1]]
                values.append(dec)
        return np.stack(values, axis=1) - self.rho

    def _compute(self, x: np.ndarray):
        dec = self.decision_values(x)
        k = self.class_labels.size
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        if self.probabilistic:
            r = np.zeros((x.shape[0], k, k))
            for p, (i, j) in enumerate(pairs):
                r[:, i, j] = np.clip(_sigmoid_predict(dec[:, p], self.prob_a[p], self.prob_b[p]),
                                     _MIN_PROB, 1 - _MIN_PROB)
                r[:, j, i] = 1.0 - r[:, i, j]
            # two classes: the pairwise probability itself, as libsvm >= 3.25 (and Core ML) give it;
            # scikit-learn's bundled libsvm couples even then, which moves it by up to ~0.5%
            probabilities = np.stack([r[:, 0, 1], r[:, 1, 0]], axis=1) if k == 2 else couple(r)
            return np.argmax(probabilities, axis=1), probabilities
        votes = np.zeros((x.shape[0], k))
        rows = np.arange(x.shape[0])
        for p, (i, j) in enumerate(pairs):
            np.add.at(votes, (rows, np.where(dec[:, p] > 0, i, j)), 1.0)
        return np.argmax(votes, axis=1), votes / len(pairs)


def _sigmoid_predict(dec: np.ndarray, a: float, b: float) -> np.ndarray:
    """libsvm's ``1 / (1 + exp(A dec + B))``, computed without overflow."""
    f = dec * a + b
    e = np.exp(-np.abs(f))
    return np.where(f >= 0, e / (1.0 + e), 1.0 / (1.0 + e))


def couple(r: np.ndarray) -> np.ndarray:
    """Class probabilities from pairwise ones, libsvm's iterative method, over a batch.

    Parameters
    ----------
    r : np.ndarray [shape=(n_examples, k, k)]
        ``r[e, i, j]`` = P(class i | class i or j); the diagonal is ignored.

    Returns
    -------
    p : np.ndarray [shape=(n_examples, k)]
    """
    # fact: libsvm svm.cpp (multiclass_probability: Q matrix, max_iter = max(100, k), eps = 0.005 / k)
    n, k = r.shape[:2]
    off = ~np.eye(k, dtype=bool)
    rt = np.swapaxes(r, 1, 2)  # rt[e, i, j] = r[e, j, i]
    q = np.where(off, -rt * r, 0.0)
    q[:, np.arange(k), np.arange(k)] = np.where(off, rt * rt, 0.0).sum(axis=2)
    p = np.full((n, k), 1.0 / k)
    active = np.ones(n, dtype=bool)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        qp = np.einsum("etj,ej->et", q, p)
        pqp = (p * qp).sum(axis=1)
        converged = np.abs(qp - pqp[:, None]).max(axis=1) < eps
        active &= ~converged
        if not active.any():
            break
        a = active
        pa, qpa, pqpa, qa = p[a], qp[a], pqp[a], q[a]
        for t in range(k):
            diag = qa[:, t, t]
            diff = (-qpa[:, t] + pqpa) / diag
            pa[:, t] += diff
            pqpa = (pqpa + diff * (diff * diag + 2 * qpa[:, t])) / (1 + diff) / (1 + diff)
            qpa = (qpa + diff[:, None] * qa[:, t, :]) / (1 + diff)[:, None]
            pa /= (1 + diff)[:, None]
        p[a] = pa
    return p
