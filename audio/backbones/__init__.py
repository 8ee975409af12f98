"""Pretrained, frozen audio feature extractors ("backbones") shipped with Pippin."""
