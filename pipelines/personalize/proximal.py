"""FedProx's proximal term on a client's local training, as a wrapper around the update engine's optimizer.

FedProx (Li et al., 2020) has each client minimise its local loss plus
``mu / 2 * ||w - w_global||^2`` over the trained parameters, where ``w_global`` are
the parameters the server sent for this round; Flower's ``FedProx`` strategy sends
``mu`` as ``proximal_mu`` in the fit config and leaves the term to the client. The
term's gradient is ``mu * (w - w_global)``, so ``Proximal`` adds it to each
mini-batch's gradients before the file's own optimizer (SGD or Adam, unchanged)
takes its step -- exactly the step the file's optimizer would take on the
regularised loss. ``w_global`` is the weights at the first step of the update
(the parameters the client just loaded) unless given.

Use: ``model.update(data, wrap_optimizer=lambda opt: Proximal(opt, mu))`` (the update
engine's ``wrap_optimizer`` hook); ``CoreMLClient.fit`` does this when its fit config
carries ``proximal_mu > 0``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Proximal", "proximal_wrapper"]


class Proximal:
    """An optimizer that steps ``inner`` on ``grads + mu * (weights - anchor)``.

    Parameters
    ----------
    inner : SGD or Adam
        The update engine's optimizer (``step(weights, grads, state, *, learning_rate)``).
    mu : float >= 0
        The proximal coefficient (Flower's ``proximal_mu``).
    anchor : dict of key to np.ndarray, optional
        ``w_global`` per parameter key (the keys of ``weights``); default: the weights
        passed to the first ``step``.
    """

    def __init__(self, inner, mu: float, anchor: dict | None = None):
        if not mu >= 0:
            raise ValueError(f"proximal mu={mu!r}, expected >= 0")
        self.inner = inner
        self.mu = float(mu)
        self.anchor = None if anchor is None else {k: np.asarray(v, dtype=np.float32) for k, v in anchor.items()}

    def step(self, weights: dict, grads: dict, state: dict | None, *, learning_rate: float | None = None):
        """The inner step on the proximal gradients; ``state`` holds the inner state and the anchor."""
        state = dict(state or {"inner": None, "anchor": self.anchor})
        anchor = state["anchor"]
        if anchor is None:  # the first step: the weights the client started from
            anchor = {k: np.array(w, dtype=np.float32, copy=True) for k, w in weights.items()}
        mu = np.float32(self.mu)
        pulled = {k: grads[k].astype(np.float32, copy=False) + mu * (w - anchor[k]) for k, w in weights.items()}
        new, inner = self.inner.step(weights, pulled, state["inner"], learning_rate=learning_rate)
        return new, {"inner": inner, "anchor": anchor}


def proximal_wrapper(mu: float):
    """The ``wrap_optimizer`` hook for ``update_network``: ``optimizer -> Proximal(optimizer, mu)``."""
    mu = float(mu)
    if not mu >= 0:
        raise ValueError(f"proximal mu={mu!r}, expected >= 0")
    return lambda optimizer: Proximal(optimizer, mu)
