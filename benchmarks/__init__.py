"""Benchmarks of the signing path and its building blocks (DESIGN.md section 6)."""
