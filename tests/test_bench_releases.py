"""bench.releases: releases credited to the line that made them (a counter stands in for the
kernel's here), a missing uprobe refused in one line, and, where the uprobe exists, a real
evaluation whose lines account for its releases. (The figures are measured by running it.)"""
from __future__ import annotations

import functools
import json
import os
import re
import sys

import pytest
from support.uprobes import fake_uprobe

from gatys.bench import releases

RELEASED = [0]  # the stand-in for the kernel's counter
OUTSIDE = {"RELEASED": RELEASED}  # code in another file, as NumPy's C calls are not traced
exec(compile("def release(n=1):\n    RELEASED[0] += n\n"
             "def outside_helper():\n    release(4)\n"
             "def after_five(f):\n    release(5)\n    f()\n", "outside.py", "exec"), OUTSIDE)
release, outside_helper = OUTSIDE["release"], OUTSIDE["outside_helper"]


def inside_helper() -> None:
    release(3)


def work() -> None:
    release()
    release(2)
    x = 1  # nothing released here
    inside_helper(), release(6)  # the 6 after the call returns: this line's
    outside_helper()
    del x


def test_each_line_is_credited_with_the_releases_it_made():
    """A line gets what was released from its start to the next traced line's: the calls it
    makes into untraced code included, those into traced functions credited to their lines."""
    credit = releases.by_line(work, lambda: RELEASED[0], lambda name: name == __file__)
    first, inner = work.__code__.co_firstlineno, inside_helper.__code__.co_firstlineno
    assert credit == {(__file__, first + 1): 1, (__file__, first + 2): 2,
                      (__file__, inner + 1): 3, (__file__, first + 4): 6,
                      (__file__, first + 5): 4}


def test_releases_outside_the_traced_files_are_kept_apart():
    credit = releases.by_line(functools.partial(OUTSIDE["after_five"], work),
                              lambda: RELEASED[0], lambda name: name == __file__)
    assert credit[releases.OUTSIDE] == 5 and sum(credit.values()) == 21


def test_no_uprobe_is_one_line_saying_how_to_make_it(tmp_path, monkeypatch, capsys):
    with pytest.raises(RuntimeError, match=re.escape(
            f"make it with perf probe -x {releases.library()} PyEval_SaveThread, as root")):
        releases.tracepoint_id([str(tmp_path)])
    monkeypatch.setattr(releases, "TRACING", (str(tmp_path),))
    assert releases.main(["--size", "32", "--like", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("releases: error: no uprobe PyEval_SaveThread") and \
        err.count("\n") == 1


def test_the_uprobe_of_any_group_on_this_python_is_found(tmp_path):
    fake_uprobe(tmp_path, "PyEval_SaveThread", 2326, releases.library())
    assert releases.tracepoint_id([str(tmp_path / "none"), str(tmp_path)]) == 2326


def test_a_uprobe_on_another_python_is_refused_saying_how_to_make_one(tmp_path, monkeypatch,
                                                                      capsys):
    """A probe on another interpreter's library counts none of this one's releases (the
    figures were negative): refused, naming both files and the command."""
    other = tmp_path / "libpython3.11.so.1.0"
    other.write_bytes(b"")
    fake_uprobe(tmp_path, "PyEval_SaveThread", 2326, str(other), group="probe_libpython3")
    with pytest.raises(RuntimeError, match=re.escape(
            f"on {other}, not on this Python's library: perf probe -d 'probe_libpython3:*' "
            f"removes it; then perf probe -x {releases.library()} PyEval_SaveThread, as root")):
        releases.tracepoint_id([str(tmp_path)])
    fake_uprobe(tmp_path, "PyEval_SaveThread", 2327, releases.library())  # and one on this Python
    assert releases.tracepoint_id([str(tmp_path)]) == 2327
    monkeypatch.setattr(releases, "TRACING", (str(tmp_path),))
    (tmp_path / "uprobe_events").write_text(f"p:probe_libpython3/PyEval_SaveThread {other}:0x1\n")
    assert releases.main(["--size", "32", "--like", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"releases: error: the uprobe PyEval_SaveThread is on {other}") and \
        err.count("\n") == 1


def test_the_library_to_probe_is_the_file_this_interpreter_runs(capsys, monkeypatch, tmp_path):
    assert releases.main(["--library"]) == 0
    path = capsys.readouterr().out.strip()
    # a libpython that the executable loads, or the executable itself (statically linked)
    assert os.path.isfile(path) and (os.path.samefile(path, "/proc/self/exe")
                                     or os.path.basename(path).startswith("libpython"))
    # the mapping that holds PyEval_SaveThread's address, whatever else is mapped
    import ctypes
    address = ctypes.cast(ctypes.pythonapi.PyEval_SaveThread, ctypes.c_void_p).value
    maps = tmp_path / "maps"
    maps.write_text(f"{address - 4096:x}-{address:x} r-xp 00000000 00:00 1 /lib/other.so\n"
                    f"{address:x}-{address + 16:x} r-xp 00000000 00:00 2 /opt/py/libpython9.so\n")
    assert releases.library(str(maps)) == "/opt/py/libpython9.so"
    import sysconfig  # no maps: sysconfig's shared library, else the executable
    monkeypatch.setattr(sysconfig, "get_config_var",
                        {"LDLIBRARY": "libpython3.11.a", "LIBDIR": "/usr/lib"}.get)
    assert releases.library(str(tmp_path / "none")) == sys.executable


def test_bad_arguments_are_one_line(capsys):
    assert releases.main(["--size", "16"]) == 2
    assert releases.main(["--like", "0"]) == 2
    assert releases.main(["--out", "/no/such/folder/r.json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "folder /no/such/folder does not exist" in err


def _uprobe() -> bool:
    try:
        releases.release_counter(releases.tracepoint_id())
    except (RuntimeError, OSError):
        return False
    return True


@pytest.mark.skipif(not _uprobe(), reason="no uprobe on this Python's PyEval_SaveThread, or "
                                          "no rights to count it")
def test_an_evaluation_s_lines_account_for_its_releases(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert releases.main(["--like", "2", "--size", "32", "--top", "5", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["releases"] > 100
    # tracing adds a few: about one per call into Python outside the traced packages (the
    # tape's dataclasses' generated __init__), 37 of 725 at this size
    assert abs(r["traced_releases"] - r["releases"]) <= 0.08 * r["releases"]
    assert len(r["lines"]) == 5 and r["lines"][0]["releases"] >= r["lines"][-1]["releases"]
    assert all(f["file"].startswith("gatys" + os.sep) for f in r["functions"])
    assert r["lines"][0]["code"]
    forward = [row["layer"] for row in r["layers"] if row["direction"] == "forward"]
    assert forward[:2] == ["conv1_1", "conv1_2"] and "conv1_1" in \
        [row["layer"] for row in r["layers"] if row["direction"] == "backward"]
    assert sum(row["releases"] for row in r["layers"]) + r["outside_layers"] == r["releases"]
    assert all(row["releases"] > 0 for row in r["layers"] if row["layer"].startswith("conv"))
    assert capsys.readouterr().out.startswith("32^2, parts cut as for 2 threads, run on one: ")
