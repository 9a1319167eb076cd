"""Benchmarks of the signing path and its building blocks (docs/architecture.md section 7;
options, method and figures in benchmarks/README.md)."""
