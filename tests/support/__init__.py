"""Helpers the tests share that are not fixtures (those are in conftest.py)."""
