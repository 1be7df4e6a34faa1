"""Benchmarks that compare implementations and accelerators (`jaxcomp bench ...`)."""
