"""Evals-as-tests harness for the CLUE and FewCLUE benchmarks."""

__version__ = "0.1.0"
