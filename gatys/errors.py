"""Exceptions raised by gatys. The CLI turns each into a one-line message and an exit code."""


class GatysError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class InputError(GatysError):
    """A bad argument or input file."""


class WeightsError(GatysError):
    """A weights file that is missing, damaged, tampered with or not a VGG-19."""


class OutputError(GatysError):
    """An output path that cannot be written."""


class DeviceUnavailable(GatysError):
    """The device asked for cannot be used here; the message says why and what to do."""
