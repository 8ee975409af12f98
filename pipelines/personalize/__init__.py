"""Personalization and model deltas: teach a sound model new sounds, diff, apply and merge updates.

- ``sound``: ``personalize_knn`` (embedding + updatable k-NN); ``head``: ``personalize_head``
  (grow and retrain the dense head) for sound-classifier pipelines.
- ``memory``: the old classes' embedding memory a sound model carries (``pippin.memory``
  metadata, written at training), so personalization needs no training folder.
- ``delta``: ``diff`` / ``apply`` / ``merge`` small, verifiable ``.mldelta`` files
  (``delta_walk`` walks two specs field by field, ``delta_wire`` keeps map order,
  ``delta_read`` reads a file within size limits, every fault one error).
- ``federated`` / ``federated_server``: federated rounds on Flower (``pippin[federated]``): the
  updatable weights that travel, a ``NumPyClient`` over a Core ML file, and Flower's server loop
  and strategies writing a valid model after every round (imported on use: they load ``flwr``);
  ``proximal``: FedProx's proximal term on a client's update; ``federated_sim``: the same rounds on
  Flower's simulation engine (Ray), optionally with SecAgg+ (``pippin[federated-simulation]``).

This room sits above the runtime and the builders and below the CLI: it imports
``pippin.spec``, the runtime, ``layers``, ``update`` and ``build``, never a trainer,
a dataset or the CLI (reading audio files is the caller's job).
"""

from .delta import Delta, apply, diff, merge
from .sound import embed, embedding_network, personalize_head, personalize_knn, sound_parts

__all__ = ["Delta", "diff", "apply", "merge", "personalize_knn", "personalize_head", "embed",
           "embedding_network", "sound_parts"]
