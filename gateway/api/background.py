"""Run the gateway in a background thread: for the demo and for end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI, host: str, port: int, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` until the block exits; yields the base URL once the socket is listening."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,  # as `serve`: only WEIGHTGATE_TRUSTED_PROXIES counts
        )
    )
    thread = threading.Thread(target=server.run, name="weightgate-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    # uvicorn offers no start event; `started` flips once the socket listens.
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
