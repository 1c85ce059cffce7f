"""Shared pieces below every stage: label names, the scoring metrics, provenance (git commit and the two
data fingerprints), JSON folder readers and the read-only view of a training run folder.

Any stage may import ``ssinfnet.core``; ``ssinfnet.core`` imports no stage (``tests/test_layering.py``).
"""
