"""Benchkit: measure ML models on the hardware present, store every run in DuckDB, and turn results into decisions."""

__version__ = "0.1.0"
