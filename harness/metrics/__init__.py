"""Metrics, each computed the way the official scorer does and documented with an example."""
