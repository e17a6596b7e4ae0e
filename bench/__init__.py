"""Benchmarks for gatys: ``python -m bench`` in a checkout, or ``gatys bench``.

Prints a table (or JSON) of per-layer forward/backward times, seconds per loss+gradient
evaluation at several sizes, the machine's sgemm throughput and our fraction of it, peak memory
of a short run, and PyTorch on the same network and loss in the same run when torch imports.
"""
