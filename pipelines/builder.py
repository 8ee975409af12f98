"""Deprecated path kept for one release: use ``pippin.pipelines.build.NetworkBuilder``."""

from .build.network import NetworkBuilder

__all__ = ["NetworkBuilder"]
