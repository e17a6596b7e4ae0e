"""A ``gatys studio`` server for the tests: started as a user starts it (a subprocess on a
free port), its printed URL read back, and the few requests the tests make with its token."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL = re.compile(r"(http://[^\s/]+)/\?token=(\S+)")


@dataclass
class StudioProcess:
    process: subprocess.Popen
    base: str
    token: str
    folder: Path

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    def call(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={
            "X-Gatys-Token": self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(self, predicate: Any, what: str, timeout: float = 60) -> Any:
        """Poll the runs until ``predicate(runs)`` is true; its value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            runs = self.call("/api/runs")["runs"]
            value = predicate(runs)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {runs}")

    def stop(self, signalled: bool = False) -> tuple[int, str]:
        """Its exit code and stderr once it ended, after SIGTERM unless ``signalled`` (a test
        sent its own signal)."""
        if not signalled and self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


def start_studio(folder: Path, *extra: str) -> StudioProcess:
    """``gatys studio --folder FOLDER --port 0`` in a subprocess, once it printed its URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "gatys", "studio", "--folder", str(folder),
                                "--port", "0", *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = URL.search(line)
    if not match:
        process.kill()
        raise AssertionError(f"the studio printed no URL: {line!r} {process.stderr.read()!r}")
    return StudioProcess(process, match.group(1), match.group(2), folder)
