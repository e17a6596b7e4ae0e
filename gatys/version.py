"""The version of gatys, one place for the package, the CLI and the PNG records."""
__version__ = "0.3.0"
