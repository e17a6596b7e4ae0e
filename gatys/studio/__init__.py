"""``gatys studio``: a local web page to run transfers on, watch them converge and paint their
regions (needs ``pip install 'gatys[studio]'``). :func:`serve` starts it."""
from __future__ import annotations

import importlib.util
from typing import Any

from gatys.errors import GatysError
from gatys.run.declarations import declared, options_of
from gatys.run.options import StudioOptions

# The libraries of the studio extra (pyproject.toml), by their import names.
EXTRA = ("starlette", "uvicorn")


def missing_extra() -> str | None:
    """A one-line error if the studio's libraries are not installed, else None."""
    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        return (f"gatys studio needs {' and '.join(missing)}: pip install 'gatys[studio]'")
    return None


@declared(StudioOptions)
def serve(**keywords: Any) -> None:
    """Serve the studio until Ctrl-C or SIGTERM, which stop the run under way (its image is
    kept) and are raised again once it is saved."""
    options = options_of(StudioOptions, "serve", keywords)
    why = missing_extra()
    if why:
        raise GatysError(why)
    from gatys.studio.server import run_server
    run_server(options)
