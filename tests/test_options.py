"""The API and the command line take the same options with the same defaults, for every command
(both derived from gatys/options.py)."""
from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

import gatys
import gatys.studio
from gatys import cli
from gatys.run import declarations, gradcheck_command, options, reference
from gatys.run.demo import run_demo

# command -> (API function, options class, the arguments it needs besides options)
COMMANDS = {
    "transfer": (gatys.transfer, options.TransferOptions, ["p.png", "s.png", "-o", "o.png"]),
    "reconstruct content": (gatys.reconstruct_content, options.ContentReconstructionOptions,
                            ["p.png", "-o", "o.png"]),
    "reconstruct style": (gatys.reconstruct_style, options.StyleReconstructionOptions,
                          ["p.png", "-o", "o.png"]),
    "figure": (gatys.figure, options.FigureOptions,
               ["2", "--content", "p.png", "--style", "s.png", "-o", "f.jpg"]),
    "sweep": (gatys.sweep, options.SweepOptions, ["-o", "OUT"]),
    "demo": (run_demo, options.DemoOptions, []),
    "gradcheck": (gradcheck_command.run, options.GradcheckOptions, []),
    "reference export": (reference.export, options.ReferenceOptions, ["DIR"]),
    "reference check": (reference.check, options.ReferenceOptions, ["DIR"]),
    "studio": (gatys.studio.serve, options.StudioOptions, []),
}
NOT_OPTIONS = {"content", "style", "image", "output", "number", "folder", "command", "what",
               "action", "help"}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    for word in command.split():
        parser = next(a for a in parser._actions
                      if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


def mismatches(function, cls, argv: list[str], parser: argparse.ArgumentParser):
    """Every difference between the API's keywords/defaults and the command line's options."""
    api = {name: p.default for name, p in inspect.signature(function).parameters.items()
           if name not in NOT_OPTIONS}
    cli_options = {a.dest: a for a in parser._actions if a.dest not in NOT_OPTIONS}
    parsed = vars(parser.parse_args(argv))
    problems = []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, default in api.items():
        spec = declarations.spec_of(fields[name])
        if not spec.cli:
            continue
        if name not in cli_options:
            problems.append(f"{name}: API keyword without a command-line option")
            continue
        expected = declarations.cli_default(fields[name])
        if parsed[name] != expected or (expected is default) != (spec.cli_default is declarations.SAME):
            problems.append(f"{name}: API default {default!r}, command line {parsed[name]!r}")
        flag = isinstance(default, bool)
        if spec.show_default and not flag and "(default " not in (cli_options[name].help or ""):
            problems.append(f"{name}: --help does not show the default")
    for dest in cli_options:
        if dest.startswith("grid_") and "grid" in api:  # the sweep's lists: its grid keyword
            continue
        if dest not in api:
            problems.append(f"{dest}: command-line option without an API keyword")
    return problems


def test_sweep_takes_every_transfer_option_as_a_list_under_the_same_flag():
    from gatys.batch.grid import sweepable
    transfer_flags = {a.dest: a.option_strings for a in subparser("transfer")._actions}
    sweep_flags = {a.dest: a.option_strings for a in subparser("sweep")._actions}
    for name in sweepable():
        assert sweep_flags[f"grid_{name}"] == transfer_flags[name], name


@pytest.mark.parametrize("command", COMMANDS)
def test_api_and_command_line_take_the_same_options_and_defaults(command):
    function, cls, argv = COMMANDS[command]
    assert mismatches(function, cls, argv, subparser(command)) == []
    assert set(inspect.signature(function).parameters) - NOT_OPTIONS == \
        {f.name for f in dataclasses.fields(cls)} - NOT_OPTIONS


def test_a_default_changed_on_the_command_line_only_is_caught():
    function, cls, argv = COMMANDS["transfer"]
    parser = subparser("transfer")
    parser.set_defaults(history=30)
    assert mismatches(function, cls, argv, parser) == ["history: API default 20, command line 30"]


def test_an_unknown_keyword_is_a_type_error_as_in_python():
    with pytest.raises(TypeError, match=r"transfer\(\) got an unexpected keyword argument 'sise'"):
        gatys.transfer("p.png", "s.png", sise=256)


def test_positional_arguments_are_bound_or_refused_by_python_itself():
    """gradcheck's device may come first (as on the GPU check); one too many, or a value given
    twice, is Python's own TypeError: the declarations document the signature, they do not
    bind the arguments."""
    assert "device" in str(inspect.signature(gradcheck_command.run)).split("*")[0]
    with pytest.raises(TypeError, match=r"run\(\) takes from 0 to 1 positional arguments but 2"):
        gradcheck_command.run("cpu", 0)
    with pytest.raises(TypeError, match="multiple values for argument 'device'"):
        gradcheck_command.run("cpu", device="cpu")


def test_an_own_parameter_that_is_an_option_must_keep_its_declared_default():
    with pytest.raises(TypeError, match="must default to the declared 'auto'"):
        @declarations.declared(options.GradcheckOptions)
        def run(device="cpu", **keywords):
            pass


def test_docstrings_list_every_option_with_its_default():
    for function, cls, _ in COMMANDS.values():
        for f in dataclasses.fields(cls):
            assert f"``{f.name}`` = " in function.__doc__, (function.__name__, f.name)
