"""Notifications: signed, replay-safe, retried with backoff, and never in a request's way."""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.notify import WebhookNotifier, signature
from gateway.policy.pack import Eccn
from tests.conftest import MODEL, mint, operator

SECRET = b"shared-webhook-secret"
RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left = 0
        self.hold = threading.Event()
        self.hold.set()
        self.url = ""


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.hold.wait(30)
            if state.failures_left > 0:
                state.failures_left -= 1
                self.send_response(503)
                self.end_headers()
                return
            state.received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        state.hold.set()
        server.shutdown()
        server.server_close()


def _verified(delivery: dict[str, Any]) -> dict[str, Any]:
    """What a receiver does: check the signature before trusting a byte."""
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    timestamp = int(headers["weightgate-timestamp"])
    expected = signature(SECRET, timestamp, delivery["body"])
    assert hmac.compare_digest(expected, headers["weightgate-signature"])
    payload: dict[str, Any] = json.loads(delivery["body"])
    assert payload["id"] == headers["weightgate-delivery"]
    return payload


def test_denials_are_sent_signed_and_admin_routine_is_not(
    settings: Settings, clock: FixedClock, model_dir: Path
) -> None:
    with receiver() as hook:
        configured = settings.model_copy(
            update={"webhook_url": hook.url, "webhook_secret": SecretStr(SECRET.decode())}
        )
        init_keys(configured.keys_dir, dev_issuer=True)
        services = build_services(configured, clock)
        try:
            services.catalog.add_org(
                "deccan", name="Deccan", hq="IN", parent_hq=None, context=operator()
            )
            services.catalog.publish(
                model_dir,
                model_id=MODEL,
                revision="r1",
                eccn=Eccn.AI_MODEL_WEIGHTS,
                training_ops=None,
                context=operator(),
            )
            port = int(configured.url.rsplit(":", 1)[1])
            with serving(create_app(services), "127.0.0.1", port) as url:
                token = mint(services, subject="priya", org="deccan", country="IN")
                denied = httpx.post(
                    f"{url}/v1/grants",
                    json={"model": MODEL, "recipient_key": RECIPIENT},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert denied.status_code == 403
            assert services.notifier is not None and services.notifier.drain()
        finally:
            services.close()
    events = [_verified(d)["entry"]["event"] for d in hook.received]
    assert events == ["grant.deny"], "org.add and model.publish are not notified"
    entry = _verified(hook.received[0])["entry"]
    assert entry["actor"]["subject"] == "priya" and "index" in entry


def test_failed_deliveries_are_retried_with_growing_delays(clock: FixedClock) -> None:
    waits: list[float] = []

    def record(delay: float) -> bool:
        """Note the backoff instead of waiting it out; False: not shutting down."""
        waits.append(delay)
        return False

    with receiver() as hook:
        hook.failures_left = 2
        notifier = WebhookNotifier(hook.url, SECRET, clock, wait=record)
        notifier({"event": "exemption.approve", "exemption": {"id": "ex-1"}})
        assert notifier.drain()
        notifier.close()
    assert waits == [0.5, 1.0]
    assert len(hook.received) == 1 and notifier.delivered == 1
    assert _verified(hook.received[0])["entry"]["exemption"]["id"] == "ex-1"


def test_a_hung_receiver_never_delays_the_request(clock: FixedClock) -> None:
    with receiver() as hook:
        hook.hold.clear()  # the receiver accepts the connection and then stalls
        notifier = WebhookNotifier(hook.url, SECRET, clock, wait=lambda _delay: False)
        started = time.perf_counter()
        for n in range(50):
            notifier({"event": "grant.deny", "n": n})
        assert time.perf_counter() - started < 1.0  # queued, not sent inline
        hook.hold.set()
        assert notifier.drain(timeout=30)
        notifier.close()
    assert len(hook.received) == 50


def test_a_tampered_notification_fails_the_receivers_check(clock: FixedClock) -> None:
    with receiver() as hook:
        notifier = WebhookNotifier(hook.url, SECRET, clock)
        notifier({"event": "grant.deny"})
        assert notifier.drain()
        notifier.close()
    forged = {**hook.received[0], "body": hook.received[0]["body"].replace(b"deny", b"allow")}
    with pytest.raises(AssertionError):
        _verified(forged)
