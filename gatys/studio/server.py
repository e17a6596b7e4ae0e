"""Serving the studio: the address checked and bound, the URL with its token printed, uvicorn
run until Ctrl-C or SIGTERM, which stop the run under way (its image kept) before the signal
goes on to the command line's usual exit (130, 143)."""
from __future__ import annotations

import errno
import ipaddress
import secrets
import signal
import socket
import sys
import webbrowser
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from gatys.errors import InputError, OutputError
from gatys.run.options import StudioOptions
from gatys.studio.app import create_app

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def studio_folder(path: Any) -> Path:
    """The folder, made if missing; OutputError if it cannot be written."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gatys-studio-{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write in the folder {folder}: {e.strerror or e}") from None
    return folder.resolve()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; InputError naming the problem."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} is in use on {host}: choose another with --port "
                             "(0: any free one)") from None
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers the studio answers to: its own names for the address it listens on;
    None (any) when it listens on every address."""
    if host in ("0.0.0.0", "::"):
        return None
    names = {host, "127.0.0.1", "localhost", "[::1]"} if is_loopback(host) else {host}
    return {f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}"
            for n in names}


class _Server(uvicorn.Server):
    """uvicorn's server, telling the application which signal stopped it (the run's record
    and the exit code say so)."""

    def __init__(self, config: uvicorn.Config, state: Any) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.signum = self.state.signum or sig
        self.state.stopping.set()  # the event streams end, so the shutdown need not wait
        self.state.stopped = self.state.stopped or self.state.studio.current
        self.state.studio.begin_close(sig)  # the run under way keeps its image
        super().handle_exit(sig, frame)


def run_server(o: StudioOptions) -> None:
    """Serve the studio over ``o.folder`` until a signal stops it."""
    folder = studio_folder(o.folder)
    host = "127.0.0.1" if o.host == "localhost" else o.host
    sock = bind(host, o.port)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    app = create_app(folder, token, allowed_hosts(host, port), o.max_upload_mb)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/?token={token}"
    if not is_loopback(host):
        print(f"gatys studio: warning: listening on {host}, not only this machine: anyone who "
              "can reach it and has the token can run transfers and read the folder's pictures",
              file=sys.stderr)
    print(f"gatys studio: {url}\n  folder {folder}; Ctrl-C stops it (a run under way keeps "
          "its image)", flush=True)
    if o.open:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    server = _Server(config, app.app.state)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        # Also here, not only in the lifespan's shutdown, which uvicorn skips after a second
        # Ctrl-C: the run under way is stopped and its image written before the exit.
        app.app.state.studio.close(app.app.state.signum or signal.SIGINT)
        run = app.app.state.stopped
        if run is not None and run.state == "stopped":
            print(f"gatys studio: {run.name}: {run.message}, kept in {folder / run.name}",
                  file=sys.stderr)
