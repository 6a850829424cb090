"""Benchmarks: each prints the project's figure beside an in-process baseline from the same run."""
