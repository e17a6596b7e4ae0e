"""How an option is declared, and how the Python API and the command line are derived from the
declarations in :mod:`gatys.options`.

An option is a dataclass field made by :func:`option`: its name, default and type are the
field's, and its :class:`Spec` says how the command line spells and parses it, how the API checks
it, and its help. :func:`takes` turns an options dataclass into an API function's keywords (with
its signature and docstring), :func:`add_to_parser` into argparse options.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from . import checks
from .errors import InputError

SAME = object()  # Spec.cli_default: the same as the API's


@dataclass(frozen=True)
class Spec:
    """How one option appears outside its dataclass."""

    help: str
    check: Callable[[str, Any], Any] | None = None  # (name, value) -> checked value
    parse: Callable[[str], Any] | None = None  # command-line text -> value
    choices: Sequence[str] | None = None
    metavar: str | None = None
    flag: str | None = None  # default: --name-with-dashes
    cli: bool = True  # False: an API argument only (a callback)
    cli_default: Any = SAME  # where the command line's default differs
    show_default: bool = True  # False where the help text says what the default means
    repeat: bool = False  # the flag may be given several times; the values form a list


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field carrying its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(help, **spec)})


# --- command-line text -> value -----------------------------------------------------------------

def _parser(cast: Callable[[str], Any], noun: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    parse.__name__ = noun.split()[-1]
    return parse


INT = _parser(int, "an integer")
FLOAT = _parser(float, "a number")
INT_LIST = _parser(lambda t: [int(v) for v in t.split(",")], "an integer or a list of integers")


# --- checks, by kind of value ---------------------------------------------------------------------

def int_check(minimum: int = 1, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.positive_int(name, v, minimum)
    return check


def number_check(strict: bool = False, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.non_negative(name, v, strict)
    return check


def choice_check(choices: Sequence[str], optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.choice(name, v, choices)
    return check


# --- deriving the API and the CLI ---------------------------------------------------------------

O = TypeVar("O")


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


def checked(options: O) -> O:
    """``options`` with every field's check applied (InputError on the first bad one)."""
    values = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        check = spec_of(f).check
        values[f.name] = check(f.name, v) if check else v
    return dataclasses.replace(options, **values)


def from_keywords(cls: type[O], function: str, keywords: dict[str, Any]) -> O:
    """An instance of ``cls`` from an API call's keywords, checked; an unknown keyword is a
    TypeError, as Python's own."""
    names = {f.name for f in dataclasses.fields(cls)}
    for k in keywords:
        if k not in names:
            raise TypeError(f"{function}() got an unexpected keyword argument {k!r}")
    return checked(cls(**keywords))


def takes(cls: type, positional: Sequence[str] = (), lead: int = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an API function ``f(*params, options)``: it is called with keywords, which become
    a checked ``cls``, and its signature and docstring list them with their defaults. The option
    fields named in ``positional`` may also be given positionally, after ``f``'s first ``lead``
    parameters (as ``reconstruct_content(image, "conv4_1", "out.png")``)."""
    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(f).parameters.values() if p.name != "options"]
        fields = {o.name: o for o in dataclasses.fields(cls)}

        @functools.wraps(f)
        def api(*args: Any, **keywords: Any) -> Any:
            if len(args) > lead + len(positional):
                raise TypeError(f"{f.__name__}() takes {lead + len(positional)} positional "
                                f"arguments but {len(args)} were given")
            given = dict(zip(positional, args[lead:lead + len(positional)]))
            for name in given:
                if name in keywords:
                    raise TypeError(f"{f.__name__}() got multiple values for argument {name!r}")
            own_keywords = {p.name: keywords.pop(p.name) for p in own if p.name in keywords}
            options = from_keywords(cls, f.__name__, {**keywords, **given})
            return f(*args[:lead], *args[lead + len(positional):], **own_keywords,
                     options=options)

        inline = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=fields[n].default, annotation=fields[n].type)
                  for n in positional]
        keyword = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                     annotation=o.type)
                   for o in dataclasses.fields(cls) if o.name not in positional]
        api.__signature__ = inspect.signature(f).replace(  # type: ignore[attr-defined]
            parameters=own[:lead] + inline + own[lead:] + keyword)
        lines = [f"    ``{o.name}`` = {_show(o.default)}: {spec_of(o).help}"
                 for o in dataclasses.fields(cls)]
        api.__doc__ = (f.__doc__ or "") + "\n\n    Options:\n\n" + "\n".join(lines) + "\n"
        return api
    return wrap


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def flag_of(f: dataclasses.Field) -> str:
    return spec_of(f).flag or "--" + f.name.replace("_", "-")


def cli_default(f: dataclasses.Field) -> Any:
    s = spec_of(f)
    return f.default if s.cli_default is SAME else s.cli_default


def add_to_parser(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One command-line option per field of ``cls`` (except API-only ones and ``skip``), each
    with its declared default shown in its help."""
    for f in dataclasses.fields(cls):
        s = spec_of(f)
        if not s.cli or f.name in skip:
            continue
        if isinstance(f.default, bool):  # a flag: off unless given
            action = "store_false" if cli_default(f) else "store_true"
            p.add_argument(flag_of(f), dest=f.name, action=action, help=s.help)
            continue
        help_text = s.help + (f" (default {_show(f.default)})" if s.show_default else "")
        p.add_argument(flag_of(f), dest=f.name, default=f.default, type=_cli_type(f),
                       choices=s.choices, metavar=s.metavar, help=help_text,
                       **({"action": "append"} if s.repeat else {}))


def _cli_type(f: dataclasses.Field) -> Callable[[str], Any] | None:
    """The option's parse, then its check, so a bad number is refused by argparse, in one
    line, before anything runs."""
    s = spec_of(f)
    if s.parse is None:
        return None

    def parse(text: str) -> Any:
        value = s.parse(text)
        if s.check is not None:
            try:
                s.check(f.name, value)
            except InputError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return value
    parse.__name__ = s.parse.__name__
    return parse


def from_namespace(cls: type, a: argparse.Namespace) -> dict[str, Any]:
    """The API keywords of ``cls`` that the parsed command line ``a`` gives."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(cls) if spec_of(f).cli}
