"""How an option is declared, and how the Python API and the command line are derived from the
declarations in :mod:`gatys.run.options`.

An option is a dataclass field made by :func:`option`: its name, default and type are the
field's, and its :class:`Spec` says how the command line spells and parses it, how the API checks
it, and its help. :func:`declared` shows an options dataclass in an API function's signature and
docstring, :func:`options_of` makes the checked options from the function's keywords, and
:func:`add_to_parser` turns the dataclass into argparse options.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from gatys.errors import InputError
from gatys.run import checks

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


def redeclared(base: type, name: str, default: Any, help: str) -> Any:
    """The option ``name`` of ``base`` (its check, parse and choices) with the default and help
    of a command whose default differs."""
    inherited = next(f for f in dataclasses.fields(base) if f.name == name)
    return field(default=default,
                 metadata={"spec": dataclasses.replace(spec_of(inherited), help=help)})


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

OptionsT = TypeVar("OptionsT", bound="DataclassInstance")
F = TypeVar("F", bound=Callable[..., Any])


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


def checked(options: OptionsT) -> OptionsT:
    """``options`` with every field's check applied (InputError on the first bad one)."""
    values = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        check = spec_of(f).check
        values[f.name] = check(f.name, v) if check else v
    return dataclasses.replace(options, **values)


def options_of(cls: type[OptionsT], function: str, keywords: dict[str, Any]) -> OptionsT:
    """An instance of ``cls`` from an API call's keywords, checked; an unknown keyword is a
    TypeError, as Python's own."""
    names = {f.name for f in dataclasses.fields(cls)}
    for k in keywords:
        if k not in names:
            raise TypeError(f"{function}() got an unexpected keyword argument {k!r}")
    return checked(cls(**keywords))


def declared(cls: type) -> Callable[[F], F]:
    """Document an API function ``f(own parameters..., **keywords)`` that takes the options of
    ``cls`` as keywords: its signature lists them (keyword-only, with their declared defaults)
    after its own parameters, and its docstring lists each with its help. Python binds the
    arguments itself; ``f`` makes its checked options with :func:`options_of`. An own parameter
    that is also an option (``reconstruct_content``'s ``layer``) must default to the
    declaration's default, so that it is declared once."""
    def wrap(f: F) -> F:
        signature = inspect.signature(f)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        fields = dataclasses.fields(cls)
        for p in own:
            declared_field = next((o for o in fields if o.name == p.name), None)
            if declared_field is not None and p.default != declared_field.default:
                raise TypeError(f"{f.__name__}({p.name}=...) must default to the declared "
                                f"{declared_field.default!r}")
        keyword = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                     annotation=o.type)
                   for o in fields if o.name not in {p.name for p in own}]
        f.__signature__ = signature.replace(parameters=own + keyword)  # type: ignore[attr-defined]
        lines = [f"    ``{o.name}`` = {show(o.default)}: {spec_of(o).help}" for o in fields]
        f.__doc__ = (f.__doc__ or "") + "\n\n    Options:\n\n" + "\n".join(lines) + "\n"
        return f
    return wrap


def show(value: Any) -> str:
    """A default as the help shows it (a list comma-joined)."""
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
        help_text = s.help + (f" (default {show(f.default)})" if s.show_default else "")
        extra: dict[str, Any] = {"action": "append"} if s.repeat else {}
        cast_text = _cli_type(f)
        if cast_text is not None:
            extra["type"] = cast_text
        p.add_argument(flag_of(f), dest=f.name, default=f.default, choices=s.choices,
                       metavar=s.metavar, help=help_text, **extra)


def _cli_type(f: dataclasses.Field) -> Callable[[str], Any] | None:
    """The option's parse, then its check, so a bad number is refused by argparse, in one
    line, before anything runs."""
    s = spec_of(f)
    text_to_value = s.parse
    if text_to_value is None:
        return None

    def parse(text: str) -> Any:
        value = text_to_value(text)
        if s.check is not None:
            try:
                s.check(f.name, value)
            except InputError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return value
    parse.__name__ = text_to_value.__name__
    return parse


def from_text(f: dataclasses.Field, text: str) -> Any:
    """The value of option ``f`` typed as ``text`` (in a form, say), parsed and checked as the
    command line does it; InputError naming the option's flag if it is not one."""
    parse = _cli_type(f)
    if parse is None:
        return text
    try:
        return parse(text)
    except argparse.ArgumentTypeError as e:
        raise InputError(f"{flag_of(f)}: {e}") from None


def from_namespace(cls: type, a: argparse.Namespace) -> dict[str, Any]:
    """The API keywords of ``cls`` that the parsed command line ``a`` gives."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(cls) if spec_of(f).cli}
