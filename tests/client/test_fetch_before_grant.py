"""Every local check runs before the grant: a fetch that cannot finish costs no grant and no quota.

The client lists the revision's files (``GET /v1/models/{model}/revisions/
{revision}/files``), applies the globs the gateway would, and judges the disk
against that list. A grant is only asked for when something must be
downloaded and there is room for it, and it is pinned to the revision that
was checked; a grant that names other files than the listing is refused as
an integrity failure before a byte is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.bootstrap import Services
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.client.hf_cache import HuggingFaceLayout
from gateway.errors import Conflict, InsufficientSpace, IntegrityError, InvalidInput, NotFound
from gateway.policy.pack import Eccn
from gateway.state.tables import Grant
from tests.conftest import MODEL, REVISION, mint, operator

SHARD = "model-00001-of-00002.safetensors"
Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _client(services: Services) -> GatewayClient:
    return GatewayClient(services.settings.url, mint(services))


def _hf(cache: Path, **options: Any) -> FetchOptions:
    return FetchOptions(layout=lambda m, r: HuggingFaceLayout(cache, m, r), **options)


def _options(hf: bool, out: Path, **options: Any) -> FetchOptions:
    return _hf(out, **options) if hf else FetchOptions(**options)


def _grant_events(services: Services) -> list[str]:
    events = [str(e.as_dict()["event"]) for e in services.audit.query()]
    return [event for event in events if event.startswith("grant.")]


def _grant_rows(services: Services) -> int:
    # Quotas are counted from this table (gateway.quotas): no row, no quota used.
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Grant)) or 0


def _downloaded(services: Services) -> list[str]:
    return [e.as_dict()["path"] for e in services.audit.query(event="download.redirect")]


def _model_bytes(services: Services) -> int:
    return sum(f.plaintext_size for f in services.catalog.files(MODEL, REVISION))


class _ListingInTransit(httpx.BaseTransport):
    """Real HTTP to the real gateway; only the file listing's body is edited on its way back.

    It stands for a gateway (or something between) whose listing disagrees
    with the grant it then issues.
    """

    def __init__(self, edit: Edit) -> None:
        self._inner = httpx.HTTPTransport()
        self._edit = edit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        path = request.url.path
        if not (path.startswith("/v1/models/") and path.endswith("/files")):
            return response
        response.read()
        body = self._edit(json.loads(response.content))
        return httpx.Response(response.status_code, json=body)

    def close(self) -> None:
        self._inner.close()


@contextmanager
def _client_seeing(services: Services, edit: Edit) -> Iterator[GatewayClient]:
    with _client(services) as client:
        client.http.close()
        client.http = httpx.Client(transport=_ListingInTransit(edit), timeout=30)
        yield client


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("hf", [False, True], ids=["plain", "hf-cache"])
def test_first_fetch_without_room_is_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path, hf: bool
) -> None:
    out = tmp_path / "out"
    tight = _options(hf, out, disk_free=lambda _path: _model_bytes(catalog_ready) - 1)
    with _client(catalog_ready) as client, pytest.raises(InsufficientSpace, match="free"):
        fetch(client, MODEL, None, out, tight)
    assert _grant_events(catalog_ready) == [], "no decision was asked for, so none was audited"
    assert _grant_rows(catalog_ready) == 0, "no grant, so no quota used"
    assert not out.exists()
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, None, out, _options(hf, out))
    assert sum(f.size for f in files) == _model_bytes(catalog_ready)
    assert _grant_rows(catalog_ready) == 1


@pytest.mark.usefixtures("gateway_url")
def test_room_is_judged_for_the_files_the_globs_select(
    catalog_ready: Services, tmp_path: Path
) -> None:
    config = next(
        f for f in catalog_ready.catalog.files(MODEL, REVISION) if f.path == "config.json"
    )
    room = FetchOptions(include=("*.json",), disk_free=lambda _path: config.plaintext_size)
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, None, tmp_path / "a", room)
    assert item.path.name == "config.json"
    shards_only = FetchOptions(
        exclude=("config.json",), disk_free=lambda _path: config.plaintext_size
    )
    with _client(catalog_ready) as client, pytest.raises(InsufficientSpace):
        fetch(client, MODEL, None, tmp_path / "b", shards_only)
    assert _grant_rows(catalog_ready) == 1, "only the fetch that fitted asked for a grant"


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("hf", [False, True], ids=["plain", "hf-cache"])
def test_unpinned_rerun_of_a_complete_fetch_asks_for_no_grant(
    catalog_ready: Services, tmp_path: Path, hf: bool
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        first = fetch(client, MODEL, None, out, _options(hf, out))
    grants = _grant_events(catalog_ready)
    downloaded = _downloaded(catalog_ready)
    with _client(catalog_ready) as client:
        again = fetch(client, MODEL, None, out, _options(hf, out))
    assert _grant_events(catalog_ready) == grants, "no grant, no quota, for files already here"
    assert _grant_rows(catalog_ready) == 1
    assert _downloaded(catalog_ready) == downloaded
    assert [f.path for f in again] == [f.path for f in first]
    assert all(f.reused for f in again)


@pytest.mark.usefixtures("gateway_url")
def test_unpinned_rerun_after_a_new_revision_fetches_the_new_one(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, out)
    (model_dir / "config.json").write_text('{"architectures": ["AtlasForCausalLM"], "v": 2}')
    catalog_ready.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision="r2",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    granted: list[str] = []
    with _client(catalog_ready) as client:
        files = fetch(
            client,
            MODEL,
            None,
            out,
            FetchOptions(force=True),
            on_grant=lambda g: granted.append(g["revision"]),
        )
    assert granted == ["r2"], "the latest revision is the one checked and granted"
    assert {f.path.name: f.reused for f in files} == {
        "config.json": False,
        SHARD: True,
        "model-00002-of-00002.safetensors": True,
    }


@pytest.mark.usefixtures("gateway_url")
def test_first_fetch_over_a_file_of_another_size_stops_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"my": "own edits, longer than the published file"}')
    with _client(catalog_ready) as client, pytest.raises(Conflict, match="--force"):
        fetch(client, MODEL, None, out)
    assert _grant_events(catalog_ready) == []
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


@pytest.mark.usefixtures("gateway_url")
def test_globs_that_select_nothing_are_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    with _client(catalog_ready) as client, pytest.raises(NotFound, match="include/exclude"):
        fetch(client, MODEL, None, tmp_path / "out", FetchOptions(include=("*.bin",)))
    with _client(catalog_ready) as client, pytest.raises(NotFound, match="include/exclude"):
        fetch(client, MODEL, None, tmp_path / "out", FetchOptions(exclude=("*",)))
    assert _grant_events(catalog_ready) == []


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize(
    ("model", "revision", "error"),
    [
        ("acme/no-such-model", None, NotFound),
        (MODEL, "r999", NotFound),
        ("../../etc", None, InvalidInput),
        (MODEL, "r1/../../x", InvalidInput),
    ],
    ids=["unknown-model", "unknown-revision", "hostile-model", "hostile-revision"],
)
def test_unknown_or_hostile_names_are_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path, model: str, revision: str | None, error: type
) -> None:
    with _client(catalog_ready) as client, pytest.raises(error):
        fetch(client, model, revision, tmp_path / "out")
    assert _grant_events(catalog_ready) == []


@pytest.mark.usefixtures("gateway_url")
def test_grant_is_for_the_revision_that_was_checked_though_another_is_published_meanwhile(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    def publish_meanwhile(body: dict[str, Any]) -> dict[str, Any]:
        catalog_ready.catalog.publish(
            model_dir,
            model_id=MODEL,
            revision="r2",
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=operator(),
        )
        return body

    granted: list[str] = []
    with _client_seeing(catalog_ready, publish_meanwhile) as client:
        fetch(
            client, MODEL, None, tmp_path / "out", on_grant=lambda g: granted.append(g["revision"])
        )
    assert granted == [REVISION]


def _drop_last_file(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "files": body["files"][:-1]}


def _shrink_first_file(body: dict[str, Any]) -> dict[str, Any]:
    first, *rest = body["files"]
    return {**body, "files": [{**first, "size": first["size"] - 1}, *rest]}


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("edit", [_drop_last_file, _shrink_first_file], ids=["fewer", "smaller"])
def test_grant_naming_other_files_than_the_listing_is_an_integrity_failure(
    catalog_ready: Services, tmp_path: Path, edit: Edit
) -> None:
    out = tmp_path / "out"
    with _client_seeing(catalog_ready, edit) as client, pytest.raises(IntegrityError, match="list"):
        fetch(client, MODEL, None, out)
    assert _downloaded(catalog_ready) == [], "nothing downloaded on a grant nobody checked"
    assert not any(out.rglob("*.safetensors*"))


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("hf", [False, True], ids=["plain", "hf-cache"])
def test_wider_fetch_needs_room_only_for_what_is_missing(
    catalog_ready: Services, tmp_path: Path, hf: bool
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        [shard] = fetch(client, MODEL, None, out, _options(hf, out, include=(SHARD,)))
    room = _model_bytes(catalog_ready) - shard.size
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, None, out, _options(hf, out, disk_free=lambda _path: room))
    assert {f.path.name: f.reused for f in files}[SHARD] is True


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("hf", [False, True], ids=["plain", "hf-cache"])
def test_narrower_rerun_of_a_complete_fetch_asks_for_no_grant(
    catalog_ready: Services, tmp_path: Path, hf: bool
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, out, _options(hf, out))
    with _client(catalog_ready) as client:
        [shard] = fetch(client, MODEL, None, out, _options(hf, out, include=(SHARD,)))
    assert shard.reused
    with _client(catalog_ready) as client:
        again = fetch(client, MODEL, REVISION, out, _options(hf, out))
    assert all(f.reused for f in again)
    assert _grant_rows(catalog_ready) == 1, "a revision's hashes hold whatever globs recorded them"
