"""How ``weightgate serve`` runs: one process, or a supervisor and N worker processes.

Each worker builds its own services from the environment (``worker_app``):
one database, one audit log, one publisher elected among them.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from gateway import metrics
from gateway.api.logging_setup import logging_config
from gateway.errors import InvalidInput, Unavailable


def run_single(app: FastAPI, sock: socket.socket, *, log_format: str) -> None:
    config = _config(app, sock, workers=1, log_format=log_format)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(sock: socket.socket, workers: int, *, log_format: str) -> None:
    """N processes accepting on one socket, restarted by uvicorn's supervisor if one dies.

    Their metrics meet in a directory made for this run (and removed after
    it), so that ``/metrics``, whichever worker answers, adds up all of them.
    """
    config = _config("gateway.api.app:worker_app", sock, workers=workers, log_format=log_format)
    # asyncio accepts up to ``backlog`` connections each time the socket wakes
    # it, and the worker that wakes first then takes a whole burst: measured
    # with wrk, one of two workers held all 64 connections. Taken one at a
    # time, they spread over the workers; the supervisor puts the kernel's
    # queue back to BACKLOG (uvicorn listens with the same number).
    config.backlog = ACCEPTS_PER_WAKEUP
    with tempfile.TemporaryDirectory(prefix="weightgate-metrics-") as directory:
        # Workers are spawned, so each reads this when it first imports prometheus_client.
        os.environ[metrics.MULTIPROC_DIR] = directory
        try:
            _Supervisor(config, sockets=[sock], metrics_dir=Path(directory)).run()
        finally:
            os.environ.pop(metrics.MULTIPROC_DIR, None)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, which also drops the live gauges of each worker that ended.

    Whichever way a worker ends (crashed and replaced, SIGHUP, SIGTTOU), the
    next pass of the supervisor's loop finds it gone: its counters stay in the
    sums, its queue depths no longer count.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], metrics_dir: Path):
        super().__init__(config, sockets)
        self._metrics_dir = metrics_dir
        self._forgotten: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        # A worker (re)started listens with ACCEPTS_PER_WAKEUP: the queue of
        # connections not yet accepted is this socket's, whoever accepts them.
        for sock in self.sockets:
            sock.listen(BACKLOG)
        serving = {process.pid for process in self.processes}
        for file in self._metrics_dir.iterdir():
            pid = _WORKER_FILE.fullmatch(file.name)
            if pid is None or int(pid[1]) in serving or int(pid[1]) in self._forgotten:
                continue
            metrics.mark_process_dead(int(pid[1]), self._metrics_dir)
            self._forgotten.add(int(pid[1]))


# prometheus_client's files: counter_<pid>.db, gauge_livesum_<pid>.db, ...
_WORKER_FILE = re.compile(r"[a-z_]+_(\d+)\.db")


def _config(
    app: FastAPI | str, sock: socket.socket, *, workers: int, log_format: str
) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        log_level="info",
        log_config=logging_config(log_format),
        access_log=False,  # the app's own (``access_log``) names the route, caller and latency
        # uvicorn believes X-Forwarded-For from loopback by default; only
        # WEIGHTGATE_TRUSTED_PROXIES may decide whose forwarded address counts.
        proxy_headers=False,
        http=ProblemH11Protocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )


# Request line and headers together: a token is at most 8 KiB, a DPoP proof
# less; anything beyond this is refused before the application sees it.
MAX_HEADER_BYTES = 64 << 10


class ProblemH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, answering what it cannot parse as problem+json.

    A request too malformed (or with headers too large) to reach the app gets
    the same kind of answer as every other refusal, not a bare text line.
    """

    def send_400_response(self, _msg: str) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "bad request",
                "status": 400,
                "detail": "the request is not valid HTTP/1.1, or its request line and headers "
                f"exceed {MAX_HEADER_BYTES // 1024} KiB",
                "code": "invalid_input",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket whose accepted connections get TCP_NODELAY.

    Bound and listening before anything else happens, so a port in use fails
    ``serve`` before it touches any state. Listening at once matters: two
    sockets with SO_REUSEADDR may both bind one port, and only the first to
    listen keeps it; a ``serve`` that bound but listened only once uvicorn
    started could lose the port after recording the pack it enforces.

    asyncio turns Nagle's algorithm off only on connections accepted from a
    socket created with ``IPPROTO_TCP``; uvicorn's own multi-worker socket is
    created without it, and every response then waits for the client's
    delayed ACK: 45 ms per request instead of 1.7 ms, measured on loopback.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        # A port another process holds is unavailable, not a malformed address.
        refusal = Unavailable if exc.errno == errno.EADDRINUSE else InvalidInput
        raise refusal(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


# uvicorn's default; it listens again on the socket with its own, which is harmless.
BACKLOG = 2048
# How many connections a worker takes each time the listening socket wakes it.
ACCEPTS_PER_WAKEUP = 1


def bound_url(sock: socket.socket) -> str:
    """The base URL of the address ``sock`` is bound to: what the gateway serves, by default."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listens_everywhere(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0]).is_unspecified


def url_names(url: str, sock: socket.socket) -> bool:
    """Whether ``url`` names the address ``sock`` is bound to (any host, if bound to all)."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    bound = ipaddress.ip_address(sock.getsockname()[0])
    if port != sock.getsockname()[1]:
        return False
    if bound.is_unspecified:
        return True
    if parts.hostname == "localhost":
        return bound.is_loopback
    try:
        return ipaddress.ip_address(parts.hostname or "") == bound
    except ValueError:
        return False  # a name: it may well resolve here, but that is for the operator to say
