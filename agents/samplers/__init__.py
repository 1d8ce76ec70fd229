"""Samplers: transformers (CPU), and the protocol every sampler implements."""
