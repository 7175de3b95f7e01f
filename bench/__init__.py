"""Benchmarks of batchyard; pytest never collects this package."""
