"""The transfer options as the studio's form shows them, taken from their declarations
(:mod:`gatys.run.options`): no second list of defaults. A form's values are text, parsed and
checked as the command line parses them, and the run they describe is also shown as the
``gatys transfer`` command that repeats it."""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

from gatys.errors import InputError
from gatys.run.declarations import cli_default, flag_of, from_text, show, spec_of
from gatys.run.options import TransferOptions

# Shown first; every other command-line option of a transfer is under "more".
MAIN = ("size", "iterations", "ratio", "pool", "init", "seed", "scales", "style_scale",
        "preserve_colors", "style_blend")
# Not in the form: the studio sets them (regions are painted, the callback is its own) or
# they write other files than the run's picture.
NOT_IN_FORM = ("regions", "plot", "save_every", "progress", "callback", "weights", "preprocess")


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TransferOptions)
            if spec_of(f).cli and f.name not in NOT_IN_FORM}


def fields() -> list[dict[str, Any]]:
    """The form's fields: name, flag, help, the declared default as the help shows it (empty
    where the default depends on other options: the help says how), choices, and whether it is
    an on/off flag or among the main options."""
    out = []
    for name, f in _fields().items():
        s, default = spec_of(f), cli_default(f)
        out.append({"name": name, "flag": flag_of(f), "help": s.help,
                    "default": "" if default is None else show(default),
                    "choices": list(s.choices or []), "flag_only": isinstance(f.default, bool),
                    "main": name in MAIN})
    out.sort(key=lambda field: (not field["main"], MAIN.index(field["name"])
                                if field["main"] else 0))
    return out


def keywords(values: dict[str, Any]) -> dict[str, Any]:
    """The API keywords of a form's ``values`` (text, or true/false for a flag; empty text
    means the default), each parsed and checked as on the command line."""
    known = _fields()
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise InputError(f"unknown option {name!r}")
        f = known[name]
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise InputError(f"{flag_of(f)} is on or off, got {value!r}")
            if value != cli_default(f):
                out[name] = value
            continue
        if not isinstance(value, str):
            raise InputError(f"{flag_of(f)}: expected text, got {value!r}")
        if value.strip():
            out[name] = from_text(f, value.strip())
    return out


def command(values: dict[str, Any], content: Path, styles: list[Path],
            regions: list[str], output: Path) -> str:
    """The ``gatys transfer`` command line of the same run (``regions`` as --region text)."""
    known = _fields()
    words = ["gatys", "transfer", str(content), *map(str, styles), "-o", str(output)]
    for name, value in values.items():
        f = known[name]
        if isinstance(f.default, bool):
            if value != cli_default(f):
                words.append(flag_of(f))
        elif isinstance(value, str) and value.strip():
            words += [flag_of(f), value.strip()]
    for r in regions:
        words += ["--region", r]
    return " ".join(shlex.quote(w) for w in words)
