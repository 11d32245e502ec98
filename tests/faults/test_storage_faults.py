"""Storage faults: a store that hangs, and a store that is killed.

Before: 60 file-URL requests against a hung S3 used up the worker pool, and
``/healthz`` took 57 s; grants went on being issued for files nobody could
fetch. Now a hung store costs a request a few seconds (short timeouts), then
nothing at all (it is known down), grants are refused with 503 while it is
down, and the probe brings everything back when the store returns.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bootstrap import build_services
from gateway.clock import SystemClock
from gateway.policy.pack import Eccn
from tests.conftest import MODEL, operator
from tests.faults.support import LivenessWatch, MotoOnPort, Site, StallingProxy, site
from tests.scenarios.deployment import Replica
from tests.storage.conftest import create_bucket, s3_client

# As in the incident: more file-URL requests at once than the 40 worker threads.
FILE_URL_REQUESTS = 60
# Each of them must be answered within this while the store hangs: two
# attempts of a 3 s read timeout, plus waiting for a worker thread.
HUNG_STORE_ANSWER_BOUND = 12.0
# Once the store is known down, a refusal makes no network call at all.
KNOWN_DOWN_ANSWER_BOUND = 1.0
# The store is back: the probe (every 2 s) must see it within this.
RECOVERY_BOUND = 20.0
RECOVERY_ATTEMPTS = 100


def _s3_env(bucket: str, endpoint: str) -> dict[str, str]:
    return {"WEIGHTGATE_STORAGE": f"s3://{bucket}/weights", "WEIGHTGATE_S3_ENDPOINT_URL": endpoint}


async def _get_all(url: str, count: int) -> list[tuple[httpx.Response, float]]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await client.get(url)
            return response, time.monotonic() - started

        return await asyncio.gather(*(one() for _ in range(count)))


def _granted_again(made: Site, replica: Replica) -> dict[str, Any]:
    """Ask for a grant until one is issued; everything before it must be a 503."""
    deadline = time.monotonic() + RECOVERY_BOUND
    for _ in range(RECOVERY_ATTEMPTS):
        response = made.grant(replica)
        if response.status_code == 201:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "the gateway did not recover without a restart"
        time.sleep(0.2)  # the next probe round is what is awaited; ask again shortly
    pytest.fail("no grant within the recovery attempts")


def _assert_refused_as_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert "location" not in response.headers


def _fetch_header(file_url: str, expected_header: str) -> None:
    """Follow a file URL to the store and read the file's first bytes: downloads work."""
    redirect = httpx.get(file_url, timeout=30)
    assert redirect.status_code == 307, redirect.text
    ranged = httpx.get(redirect.headers["location"], headers={"Range": "bytes=0-55"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == base64.b64decode(expected_header)


@pytest.mark.usefixtures("aws_env")
def test_hung_storage_costs_requests_seconds_not_the_gateway_and_stops_grants(
    tmp_path: Path, postgres_url: str, moto_on_port: MotoOnPort
) -> None:
    bucket = create_bucket(s3_client(moto_on_port.url))
    with (
        StallingProxy(moto_on_port.port) as proxy,
        site(tmp_path, postgres_url, _s3_env(bucket, proxy.url)) as made,
    ):
        replica = made.serve()
        first = made.grant(replica)
        assert first.status_code == 201, first.text
        granted = [first.json()]
        file_url = granted[0]["files"][0]["url"]
        assert httpx.get(file_url, timeout=30).status_code == 307
        redirects = 1

        with LivenessWatch(replica.url) as watch:
            proxy.stall()
            answers = asyncio.run(_get_all(file_url, FILE_URL_REQUESTS))
            for response, seconds in answers:
                _assert_refused_as_unavailable(response)
                assert seconds < HUNG_STORE_ANSWER_BOUND, f"a file URL took {seconds:.1f} s"

            # Known down now: grants are refused without waiting on the store.
            started = time.monotonic()
            _assert_refused_as_unavailable(made.grant(replica))
            _assert_refused_as_unavailable(httpx.get(file_url, timeout=30))
            assert time.monotonic() - started < 2 * KNOWN_DOWN_ANSWER_BOUND
            ready = httpx.get(f"{replica.url}/readyz", timeout=30)
            assert ready.status_code == 503

            proxy.resume()
            recovered = _granted_again(made, replica)
            granted.append(recovered)
        watch.assert_answered_throughout(at_least=20)

        _fetch_header(recovered["files"][0]["url"], recovered["files"][0]["header"])
        redirects += 1
        assert replica.process.poll() is None  # recovered, not restarted
        made.assert_log_holds_exactly(granted, redirects=redirects)


@pytest.mark.usefixtures("aws_env")
def test_storage_killed_refuses_grants_until_it_is_back_on_its_port(
    tmp_path: Path, postgres_url: str, moto_on_port: MotoOnPort
) -> None:
    s3 = s3_client(moto_on_port.url)
    bucket = create_bucket(s3)
    with site(tmp_path, postgres_url, _s3_env(bucket, moto_on_port.url)) as made:
        replica = made.serve()
        first = made.grant(replica)
        assert first.status_code == 201, first.text
        granted = [first.json()]
        file_url = granted[0]["files"][0]["url"]

        with LivenessWatch(replica.url) as watch:
            moto_on_port.stop()
            # No request touches the store here: the probe alone must notice.
            # Until it does (one round, 2 s), a grant may still be issued; it
            # is logged like any other, and its file URLs answer 503.
            deadline = time.monotonic() + 10
            while (response := made.grant(replica)).status_code == 201:
                granted.append(response.json())
                assert time.monotonic() < deadline, "grants still issued with the store down"
            _assert_refused_as_unavailable(response)
            for _ in range(3):
                started = time.monotonic()
                _assert_refused_as_unavailable(made.grant(replica))
                _assert_refused_as_unavailable(httpx.get(file_url, timeout=30))
                assert time.monotonic() - started < 2 * KNOWN_DOWN_ANSWER_BOUND

            # Back on its port, but empty (moto keeps its state in memory): a
            # store without its bucket is still down.
            moto_on_port.start()
            assert httpx.get(f"{replica.url}/readyz", timeout=30).status_code == 503
            _assert_refused_as_unavailable(made.grant(replica))

            # The operator restores the bucket; the probe sees it, no restart.
            create_bucket_named(s3, bucket)
            granted.append(_granted_again(made, replica))
        watch.assert_answered_throughout(at_least=20)
        assert replica.process.poll() is None

        # The objects went with moto's memory: republished (as r2), they download again.
        services = build_services(made.settings(), SystemClock())
        try:
            services.catalog.publish(
                made.root / "model",
                model_id=MODEL,
                revision="r2",
                eccn=Eccn.AI_MODEL_WEIGHTS,
                training_ops=None,
                context=operator(),
            )
        finally:
            services.close()
        again = _granted_r2(made, replica)
        granted.append(again)
        _fetch_header(again["files"][0]["url"], again["files"][0]["header"])
        made.assert_log_holds_exactly(granted, redirects=1)


def _granted_r2(made: Site, replica: Replica) -> dict[str, Any]:
    """A grant of r2, once the serving process sees it (its model cache lives one second)."""
    body = {**made.grant_body(), "revision": "r2"}
    deadline = time.monotonic() + 5
    for _ in range(50):
        response = httpx.post(
            f"{replica.url}/v1/grants",
            json=body,
            headers={"Authorization": f"Bearer {made.token()}"},
            timeout=30,
        )
        if response.status_code == 201:
            granted: dict[str, Any] = response.json()
            return granted
        assert response.status_code == 404, response.text
        assert time.monotonic() < deadline, "r2 never became visible"
        time.sleep(0.1)  # the cache entry expires on its own; ask again shortly
    pytest.fail("r2 never became visible")


def create_bucket_named(client: Any, bucket: str) -> None:
    client.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": client.meta.region_name},
    )
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
