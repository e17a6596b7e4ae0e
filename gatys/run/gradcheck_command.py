"""``gatys gradcheck``: every finite-difference check of :mod:`gatys.model.gradcheck` on a
device, with the options of :class:`gatys.run.options.GradcheckOptions`."""
from __future__ import annotations

from typing import Any

from gatys.kernels import get_backend
from gatys.model.gradcheck import Check, all_checks, format_table
from gatys.run.declarations import declared, options_of
from gatys.run.options import GradcheckOptions

__all__ = ["run", "format_table"]


@declared(GradcheckOptions)
def run(device: str = GradcheckOptions.device, **keywords: Any) -> list[Check]:
    """Every check, in float64, on ``device`` (cpu, cuda or auto)."""
    options = options_of(GradcheckOptions, "run", {"device": device, **keywords})
    return all_checks(get_backend(options.device), options.seed)
