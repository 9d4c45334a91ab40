"""``nnfractal explore [RUN_DIR]``: the interactive explorer in the browser (thin CLI entry).

Serves the page of `nnfractal.explorer` on 127.0.0.1 (``--host`` to serve elsewhere, with a
warning). With RUN_DIR the run's map is the first window and zoomed windows go to
``RUN_DIR/windows/``; RUN_DIR may also be an explorer session folder, to reopen it. Without
RUN_DIR a new session ``runs/explore-<timestamp>/`` computes its first window from ``--preset``
(for the MLP presets at resolution 64 and 200 steps unless given).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from nnfractal.config import ConfigError, build_config, load_preset
from nnfractal.errors import StoreError, refuse
from nnfractal.models import family_spec
from nnfractal.report import write_report
from nnfractal.training.budget import check_run

from .common import add_data_dir_flag
from .run import add_chaos_flags, chaos_ulps_of

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"


def add_explore_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("explore", help="interactive explorer: zoom into convergence maps "
                              "in a web browser")
    p.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                   help="a finished run (or an explorer session folder) to start from")
    p.add_argument("--preset", default=None, help="without RUN_DIR: preset of the first window "
                   "(default paper-tanh)")
    p.add_argument("--resolution", type=int, help="pixels per side of new windows (2..512; "
                   "default: the first window's; a new MLP session starts at 64)")
    p.add_argument("--steps", type=int, help="without RUN_DIR: optimisation steps "
                   "(a new MLP session defaults to 200)")
    p.add_argument("--tile_batch", "--tile-batch", type=int, dest="tile_batch",
                   help="without RUN_DIR: models trained together in one chunk")
    p.add_argument("--device", help="cpu | cuda | auto (for the windows this session computes)")
    p.add_argument("--out", type=Path, help="session folder (default RUN_DIR, or "
                   "runs/explore-<timestamp>)")
    add_data_dir_flag(p)
    p.add_argument("--host", default=None, help=f"address to bind (default {DEFAULT_HOST}; any "
                   "other address lets other machines reach the server)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    add_chaos_flags(p, "every window this session trains gets its twins; the chaos layer shows "
                    "them, and a run trained with --chaos", title="chaos layer")
    return p


def _fail(message: str) -> int:
    return refuse(message)


def make_session(args):
    """The session the arguments ask for (raises ExploreError / ConfigError with one line)."""
    from nnfractal.explorer.session import NEW_SESSION_DEFAULTS, ExploreError, Session

    if args.device is not None and args.device not in ("cpu", "cuda", "auto"):
        raise ConfigError("device", f"{args.device!r} is not allowed (allowed: cpu, cuda, auto)")
    if args.run_dir is not None:
        for flag, value in (("preset", args.preset), ("steps", args.steps),
                            ("tile_batch", args.tile_batch)):
            if value is not None:
                raise ExploreError(400, f"{flag}: not allowed with RUN_DIR (the run's config is used)")
        from nnfractal.storage.integrity import checked_folder
        # a damaged or edited store: one line, never a map; the map read at opening reads the
        # curves that the check read
        with checked_folder(args.run_dir):
            return Session.open(args.run_dir, args.out, data_dir=args.data_dir,
                                device=args.device, default_resolution=args.resolution,
                                report=write_report, chaos_ulps=_chaos_ulps(args))
    preset = args.preset or "paper-tanh"
    base = load_preset(preset)
    overrides = {"resolution": args.resolution, "steps": args.steps, "tile_batch": args.tile_batch,
                 "device": args.device}
    if family_spec(base.model).interactive:           # a window trains in seconds on a CPU
        for key, value in NEW_SESSION_DEFAULTS.items():
            if overrides[key] is None:
                overrides[key] = value
    cfg = build_config(preset, **overrides)
    check_run(cfg, Path(args.out) if args.out is not None else Path("."))   # one window's budget
    return Session.new(cfg, args.out, data_dir=args.data_dir, device=args.device,
                       default_resolution=args.resolution, report=write_report,
                       chaos_ulps=_chaos_ulps(args))


def _chaos_ulps(args) -> int | None:
    """The twins' distance of a --chaos session (--chaos-ulps, else the default), else None."""
    from nnfractal.runner.chaos import DEFAULT_ULPS
    ulps = chaos_ulps_of(args)
    return ulps if ulps is not None else (DEFAULT_ULPS if args.chaos else None)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = socket.gethostname()
    return f"http://{host}:{port}/"


def _host_name(host: str) -> str:
    """How a Host header names `host`: IPv6 addresses in brackets."""
    return f"[{host.strip('[]')}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    """True for a name or address of this machine only: localhost, 127.0.0.0/8, ::1."""
    import ipaddress
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cmd_explore(args) -> int:
    from nnfractal.explorer.session import ExploreError
    try:
        import uvicorn

        from nnfractal.explorer.server import create_app
    except ModuleNotFoundError as err:
        return _fail(f"explore: the explorer needs {err.name} (pip install fastapi uvicorn)")

    if not 0 <= args.port <= 65535:
        return _fail(f"port: {args.port} is not allowed (allowed: 0..65535, 0 = any free port)")
    host = args.host if args.host is not None else DEFAULT_HOST
    explicit_host = args.host is not None and not is_loopback(host)   # opens the Host check
    try:
        sock = bind_socket(host, args.port)
    except (OSError, UnicodeError) as err:
        return _fail(f"port: cannot listen on {host}:{args.port} ({err.strerror or err}) "
                     "(allowed: a free port, or 0 for any free port)")
    try:
        session = make_session(args)
    except (ExploreError, ConfigError, StoreError) as err:
        sock.close()
        return _fail(str(err))
    if explicit_host:
        sys.stderr.write(f"nnfractal: warning: serving on {host} (--host): the explorer has no "
                         "login and accepts any Host name; anyone who can reach this address can "
                         "use it and make this machine train networks\n")
    from nnfractal.explorer.server import LOCAL_HOSTS
    allowed = None if explicit_host else sorted(set(LOCAL_HOSTS) | {_host_name(host)})
    app = create_app(session, allowed_hosts=allowed)
    url = url_of(sock)
    print(f"nnfractal explore: {url}  (session folder {session.folder}; Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        stopped = session.close(timeout=0.5)      # the server's shutdown waited already
        sock.close()
    print("nnfractal explore: stopped" + ("" if stopped else
          " (the window in training was abandoned; finished windows are saved)"), flush=True)
    if not stopped:
        # The worker is inside a training chunk: end the process now rather than let the
        # interpreter's shutdown tear down a thread that is running torch kernels.
        sys.stderr.flush()
        os._exit(0)
    return 0
