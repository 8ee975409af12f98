"""pippin.pipelines.update: training and Core ML 3 on-device update semantics.

- ``fit_network(spec, inputs, targets, *, epochs, batch_size, ...)``: train every
  weight of a network from scratch (Pippin's own trainers); see ``fit``.
- ``update_network(model, training_data, *, epochs=None, progress=None, **overrides)``:
  Core ML 3's ``MLUpdateTask``: train only the layers the spec marks updatable,
  with the loss, optimizer and epochs the spec declares; see ``core_ml_update``.
- ``SGD``, ``Adam``: pure optimizer steps matching PyTorch's update equations.
- Both trainers run data-parallel on every core (``n_jobs``): fixed shards of each
  mini-batch on one process per core (forked replicas, ``procs``), summed in shard order,
  so the bytes do not depend on the core count; see ``shards`` (and ``fusion``, ``kernels``:
  a batch-statistics batchnorm, its ReLU and a 2x2 max pooling run as one pass). ``forked`` runs
  independent small fits (cross-validation folds) in forked processes.
- ``estimator.ParamsMixin``: scikit-learn's parameter conventions for the trainers.

The training engine imports only ``pippin.spec`` and ``pippin.pipelines.layers``
(it trains the same layer objects the runtime predicts with); the runtime calls
into it for ``update``, never the other way round.
"""

from .core_ml_update import StopTraining, UpdateProgress, update_network
from .fit import fit_network
from .optimizers import SGD, Adam

__all__ = ["fit_network", "update_network", "UpdateProgress", "StopTraining", "SGD", "Adam"]
