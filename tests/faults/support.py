"""What the fault drills share: faulty dependencies, a liveness watch, and the checks after a fault.

Every drill runs real ``weightgate serve`` processes (``tests.scenarios.deployment``)
on PostgreSQL, breaks one dependency for real (a store that goes silent, a
store that is killed, a KEK that disappears, a database that stops accepting
connections), and then checks the same things:

* liveness (``/healthz``) answered within a second all through the fault;
* nothing was issued that needed the broken dependency;
* every grant a client received is in the audit log, and the log verifies;
* the gateway recovered without a restart once the dependency came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

from gateway.audit.verify import verify_log
from gateway.bootstrap import build_services
from gateway.clock import SystemClock
from gateway.config import Settings
from tests.scenarios.deployment import Deployment, Replica, prepared, wait_until
from tests.storage.conftest import MOTO_SERVER, MotoServer

T = TypeVar("T")

# Each /healthz answer must come within this, fault or no fault.
LIVENESS_BOUND = 1.0


@dataclass
class Site(Deployment):
    """A deployment whose processes also get ``extra_env`` (storage, anchors) and its settings."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, port: int) -> dict[str, str]:
        return {**super().env(port), **self.extra_env}

    def settings(self) -> Settings:
        update: dict[str, Any] = {}
        if "WEIGHTGATE_STORAGE" in self.extra_env:
            update["storage"] = self.extra_env["WEIGHTGATE_STORAGE"]
        if "WEIGHTGATE_S3_ENDPOINT_URL" in self.extra_env:
            update["s3_endpoint_url"] = self.extra_env["WEIGHTGATE_S3_ENDPOINT_URL"]
        if "WEIGHTGATE_CHECKPOINT_ANCHOR" in self.extra_env:
            update["checkpoint_anchor"] = self.extra_env["WEIGHTGATE_CHECKPOINT_ANCHOR"]
        return super().settings().model_copy(update=update)

    def serve(self) -> Replica:
        replica = self.start()
        wait_until(lambda: replica.ready() is not None, timeout=60)
        return replica

    def grant(self, replica: Replica, *, timeout: float = 30) -> httpx.Response:
        """One grant request with a fresh one-time token."""
        return httpx.post(
            f"{replica.url}/v1/grants",
            json=self.grant_body(),
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=timeout,
        )

    def verified_entries(self) -> list[dict[str, Any]]:
        """Every entry of the log, once the whole log has verified as ``audit verify`` does.

        In process and with one worker: the CLI's process start and its pool of
        verifying processes cost seconds that a four-drill suite cannot spend.
        """
        services = build_services(self.settings(), SystemClock())
        try:
            audit = services.audit
            state = audit.tree_state()
            rows = list(audit.entries())
            report = verify_log(
                rows,
                origin=audit.origin,
                public_key=services.keys.audit_signer.public_key(),
                checkpoint_notes=audit.checkpoint_notes(),
                anchored=list(services.anchors.checkpoints()),
                state=state,
            )
        finally:
            services.close()
        assert report.ok, report.problems
        entries = [row.as_dict() for row in rows]
        assert [e["index"] for e in entries] == list(range(report.size))
        return entries

    def assert_log_holds_exactly(
        self,
        granted: list[dict[str, Any]],
        *,
        redirects: int | None = None,
        refused_requests: Sequence[str] = (),
    ) -> None:
        """The log verifies, and its ``grant.allow`` entries are exactly the grants received.

        Exactly: a 201 without its entry would be a grant nobody can audit,
        and an entry without its 201 a grant issued during a fault that the
        client was told had failed. ``redirects``, if given, is the number of
        307s the clients received, which the ``download.redirect`` entries must
        match; no entry may come from a request in ``refused_requests`` (ids of
        requests answered 503).
        """
        entries = self.verified_entries()
        logged_requests = {e.get("request_id") for e in entries}
        assert not logged_requests & set(refused_requests)
        allowed = {e["grant_id"]: e for e in entries if e["event"] == "grant.allow"}
        assert sorted(allowed) == sorted(g["id"] for g in granted)
        for grant in granted:
            assert entries[grant["audit_index"]]["grant_id"] == grant["id"]
        if redirects is not None:
            assert sum(e["event"] == "download.redirect" for e in entries) == redirects


@contextmanager
def site(root: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Site]:
    """A prepared ``Site`` (keys, one German org, one small model); its processes killed after."""
    with prepared(Site(root, database_url, extra_env=extra_env or {})) as made:
        yield made


@dataclass
class Answer:
    status: int | None  # None: no answer (connection error or timeout)
    seconds: float
    error: str | None = None


class LivenessWatch:
    """Polls ``/healthz`` on a thread of its own for as long as the block runs.

    Polls back to back (each answer is awaited, at most ``LIVENESS_BOUND``),
    bounded in count so a runaway drill cannot poll for ever.
    """

    def __init__(self, url: str, *, limit: int = 20_000) -> None:
        self._url = f"{url}/healthz"
        self._limit = limit
        self._stop = threading.Event()
        self.answers: list[Answer] = []
        self._thread = threading.Thread(target=self._run, name="liveness-watch", daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=LIVENESS_BOUND) as client:
            while not self._stop.is_set() and len(self.answers) < self._limit:
                started = time.monotonic()
                try:
                    status: int | None = client.get(self._url).status_code
                    error = None
                except httpx.HTTPError as exc:
                    status, error = None, repr(exc)
                self.answers.append(Answer(status, time.monotonic() - started, error))
                # Between polls: a pause so the watch does not compete with the drill's load.
                self._stop.wait(0.05)

    def __enter__(self) -> LivenessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=LIVENESS_BOUND + 5)

    def assert_answered_throughout(self, *, at_least: int) -> None:
        slow = [a for a in self.answers if a.status != 200 or a.seconds > LIVENESS_BOUND]
        assert not slow, f"{len(slow)} of {len(self.answers)} liveness probes failed: {slow[:5]}"
        assert len(self.answers) >= at_least, f"only {len(self.answers)} liveness probes"


class StallingProxy:
    """A loopback TCP proxy to ``upstream_port`` that can go silent: a hung storage service.

    Forwarding, it relays bytes both ways. Stalled, it keeps every connection
    open and answers nothing: connections it was relaying stop mid-stream, and
    new ones are accepted and never read, which is what a wedged load balancer
    or a store stuck on its disks looks like to a client. Resumed, it drops the
    connections it had stalled (their clients gave up long ago) and forwards again.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._stalled = False
        self._clients: set[asyncio.StreamWriter] = set()
        self._upstreams: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self._run(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def stall(self) -> None:
        self._run(self._stall())

    def resume(self) -> None:
        self._run(self._resume())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        if self._stalled:
            return  # accepted, never read, never answered
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.close()
            return
        self._upstreams.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            relay = asyncio.ensure_future(_pump(source, sink))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)

    async def _stall(self) -> None:
        self._stalled = True
        await _cancel(self._relays)
        await _close(self._upstreams)

    async def _resume(self) -> None:
        await _close(self._clients)
        self._stalled = False

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await _cancel(self._relays)
        await _close(self._upstreams)
        await _close(self._clients)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()
    sink.close()  # one side ended: end the other (not reached when cancelled by a stall)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _close(writers: set[asyncio.StreamWriter]) -> None:
    closing = list(writers)
    writers.clear()
    for writer in closing:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in closing), return_exceptions=True)


@dataclass
class MotoOnPort:
    """``moto_server`` on a fixed loopback port, so it can be stopped and started again there."""

    port: int
    log: IO[bytes] = field(default_factory=tempfile.TemporaryFile)
    server: MotoServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, startup_timeout: float = 30.0) -> None:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.server = MotoServer(self.url, process)
        deadline = time.monotonic() + startup_timeout
        while not self._answers():
            if process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                pytest.fail(f"moto_server did not start on {self.port}:\n{self.log.read()!r}")
            time.sleep(0.05)  # poll the listening socket again, up to the deadline

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=1).is_success
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def close(self) -> None:
        self.stop()
        self.log.close()
