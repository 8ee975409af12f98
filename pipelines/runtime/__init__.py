"""The runtime: load a Core ML model file and predict with it over whole batches.

One small module per model kind (``neural_network``, ``pipeline``, ``knn``,
``item_similarity``, ``sound_analysis``, ``identity``, ``linked``, and the classic
kinds: ``glm``, ``svm``, ``tree_ensemble``, ``encoders``, ``transforms`` on the shared
``classic`` base; ``proprietary`` names the kinds refused), each a
``RunnableModel`` subclass registered with ``@register_kind``; ``model.load``
resolves the kind once and builds everything up front. Neural-network layers
live next door in ``pippin.pipelines.layers``.

Import rules (enforced by ``tests/test_import_rules.py``): the runtime imports
``pippin.spec``, ``pippin.pipelines.layers``, the training engine
(``pippin.pipelines.update``, for ``update``) and the audio front end
(``pippin.audio.frontend``, the one log-mel definition); never a trainer
(``pippin.audio.classifier``, ``pippin.recommend``), a dataset, the builders,
personalization or the CLI.
"""

from .model import KIND_MODULES, MODEL_KINDS, RunnableModel, load, register_kind

__all__ = ["load", "RunnableModel", "MODEL_KINDS", "KIND_MODULES", "register_kind"]
