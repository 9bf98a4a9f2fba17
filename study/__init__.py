"""Reproducible study of preference alignment for multimodal LLMs."""
