"""Backends: the array module and compute primitives for each device.

The algorithm in :mod:`gatys.model` talks to a :class:`Backend` only, so it is written once and
runs on any device that provides one. This package re-exports the names its users need.
"""
from gatys.errors import DeviceUnavailable

from .backend import Backend
from .devices import DEVICES, cpu_backend, get_backend, resolve_device
from .relu_pool import Pooling

__all__ = ["Backend", "DEVICES", "DeviceUnavailable", "Pooling", "cpu_backend", "get_backend",
           "resolve_device"]
