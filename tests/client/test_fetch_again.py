"""Fetching into a place that already holds something: re-runs, partial snapshots, local mistakes.

A re-run verifies what is there and downloads only what is missing or wrong;
a mistake about the output path is refused before a grant is asked for, so
it costs no quota and leaves no audit entry.
"""

from __future__ import annotations

import errno
import filecmp
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download

from gateway.bootstrap import Services
from gateway.client.destination import local_failure
from gateway.client.fetch import PART_SUFFIX, FetchOptions, fetch
from gateway.client.fetch_record import RECORD_DIR
from gateway.client.gateway_api import GatewayClient
from gateway.client.hf_cache import HuggingFaceLayout
from gateway.errors import Conflict, InsufficientSpace, InvalidInput, WeightgateError
from tests.cli.test_cli import WEIGHTGATE, assert_one_line_error
from tests.conftest import MODEL, REVISION, mint

SHARD = "model-00001-of-00002.safetensors"


def _client(services: Services) -> GatewayClient:
    return GatewayClient(services.settings.url, mint(services))


def _hf(cache: Path, **options: Any) -> FetchOptions:
    return FetchOptions(layout=lambda m, r: HuggingFaceLayout(cache, m, r), **options)


def _downloaded(services: Services) -> list[str]:
    """The files whose ciphertext the gateway handed out, one entry per storage URL."""
    return [e.as_dict()["path"] for e in services.audit.query(event="download.redirect")]


def _grant_events(services: Services) -> list[str]:
    events = [str(e.as_dict()["event"]) for e in services.audit.query()]
    return [event for event in events if event.startswith("grant.")]


def _debris(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".weightgate-" in p.name]


@pytest.mark.usefixtures("gateway_url")
def test_second_hf_cache_fetch_verifies_what_is_there_and_downloads_nothing(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    with _client(catalog_ready) as client:
        first = fetch(client, MODEL, None, cache, _hf(cache))
    downloaded = _downloaded(catalog_ready)
    with _client(catalog_ready) as client:
        again = fetch(client, MODEL, None, cache, _hf(cache))
    assert [f.path for f in again] == [f.path for f in first]
    assert all(f.reused for f in again), "every blob was already there and verified"
    assert _downloaded(catalog_ready) == downloaded, "nothing was downloaded a second time"
    assert _debris(cache) == []
    snapshot = Path(
        snapshot_download(MODEL, revision=REVISION, cache_dir=cache, local_files_only=True)
    )
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, snapshot / source.name, shallow=False)


@pytest.mark.usefixtures("gateway_url")
def test_partial_snapshot_is_completed_by_a_wider_fetch(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, cache, _hf(cache, include=(SHARD,)))
    shard_downloads = _downloaded(catalog_ready).count(SHARD)
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, None, cache, _hf(cache))
    assert {f.path.name: f.reused for f in files}[SHARD] is True
    assert _downloaded(catalog_ready).count(SHARD) == shard_downloads
    snapshot = Path(
        snapshot_download(MODEL, revision=REVISION, cache_dir=cache, local_files_only=True)
    )
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in model_dir.iterdir())
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, snapshot / source.name, shallow=False)
    assert _debris(cache) == []


@pytest.mark.usefixtures("gateway_url")
def test_hf_blob_whose_bytes_are_wrong_is_downloaded_again(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, None, cache, _hf(cache, include=(SHARD,)))
    blob = item.path.resolve()
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # a flipped bit on disk
    blob.write_bytes(bytes(data))
    with _client(catalog_ready) as client:
        [again] = fetch(client, MODEL, None, cache, _hf(cache, include=(SHARD,)))
    assert not again.reused
    assert filecmp.cmp(model_dir / SHARD, again.path, shallow=False)


@pytest.mark.usefixtures("gateway_url")
def test_part_file_left_beside_a_complete_blob_is_cleaned_up(
    catalog_ready: Services, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, None, cache, _hf(cache, include=(SHARD,)))
    blob = item.path.resolve()
    # What an earlier, failed run left: the plaintext of a blob already in place.
    leftover = blob.with_name(blob.name + PART_SUFFIX)
    leftover.write_bytes(blob.read_bytes())
    with _client(catalog_ready) as client:
        [again] = fetch(client, MODEL, None, cache, _hf(cache, include=(SHARD,)))
    assert again.reused
    assert _debris(cache) == []


@pytest.mark.usefixtures("gateway_url")
def test_plain_fetch_again_downloads_nothing(catalog_ready: Services, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, out)
    downloaded = _downloaded(catalog_ready)
    reported: list[int] = []
    with _client(catalog_ready) as client:
        again = fetch(client, MODEL, None, out, progress=reported.append)
    assert all(f.reused for f in again)
    assert _downloaded(catalog_ready) == downloaded
    assert sum(reported) == sum(f.size for f in again), "verified bytes count as done"


@pytest.mark.usefixtures("gateway_url")
def test_file_that_differs_is_kept_without_force_and_replaced_with_it(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"my": "own edits"}')
    with _client(catalog_ready) as client, pytest.raises(Conflict, match="--force"):
        fetch(client, MODEL, None, out)
    assert (out / "config.json").read_text() == '{"my": "own edits"}'
    assert _downloaded(catalog_ready) == [], "refused before downloading anything"
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, out, FetchOptions(force=True))
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, out / source.name, shallow=False)


@pytest.mark.usefixtures("gateway_url")
def test_out_that_is_a_regular_file_is_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "weights.safetensors"
    out.write_bytes(b"mine")
    with _client(catalog_ready) as client, pytest.raises(InvalidInput, match="not a directory"):
        fetch(client, MODEL, None, out)
    assert out.read_bytes() == b"mine"
    assert _grant_events(catalog_ready) == [], "a local mistake costs no grant"


@pytest.mark.usefixtures("gateway_url")
def test_out_below_a_regular_file_is_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with _client(catalog_ready) as client, pytest.raises(InvalidInput, match="not a directory"):
        fetch(client, MODEL, None, tmp_path / "notes.txt" / "out")
    with _client(catalog_ready) as client, pytest.raises(InvalidInput, match="not a directory"):
        hub = tmp_path / "notes.txt" / "hub"
        fetch(client, MODEL, None, hub, _hf(hub))
    assert _grant_events(catalog_ready) == []


@pytest.mark.usefixtures("gateway_url")
def test_out_that_is_a_dangling_symlink_is_refused_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    with _client(catalog_ready) as client, pytest.raises(InvalidInput, match="symlink"):
        fetch(client, MODEL, None, out)
    assert _grant_events(catalog_ready) == []


@pytest.mark.usefixtures("gateway_url")
def test_symlink_in_the_output_leading_outside_is_never_written_through(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "elsewhere" / "config.json"
    precious.parent.mkdir()
    precious.write_text("not yours")
    (out / "config.json").symlink_to(precious)
    with _client(catalog_ready) as client, pytest.raises(InvalidInput, match="outside"):
        fetch(client, MODEL, None, out, FetchOptions(force=True))
    assert precious.read_text() == "not yours"
    assert _downloaded(catalog_ready) == []
    assert (out / "config.json").is_symlink()


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize("hf", [False, True], ids=["plain", "hf-cache"])
def test_rerun_of_a_pinned_revision_asks_the_gateway_for_nothing(
    catalog_ready: Services, model_dir: Path, tmp_path: Path, hf: bool
) -> None:
    out = tmp_path / "out"
    options = _hf(out) if hf else FetchOptions()
    with _client(catalog_ready) as client:
        first = fetch(client, MODEL, REVISION, out, options)
    grants = _grant_events(catalog_ready)
    reported: list[int] = []
    with _client(catalog_ready) as client:
        again = fetch(client, MODEL, REVISION, out, options, progress=reported.append)
    assert _grant_events(catalog_ready) == grants, "no grant, no quota, for files already here"
    assert [f.path for f in again] == [f.path for f in first]
    assert all(f.reused for f in again)
    assert sum(reported) == sum(f.size for f in again)
    for item in again:
        assert filecmp.cmp(model_dir / item.path.name, item.path, shallow=False)


@pytest.mark.usefixtures("gateway_url")
def test_pinned_rerun_missing_a_file_says_there_is_no_room_before_any_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, REVISION, out)
    (out / SHARD).unlink()
    grants = _grant_events(catalog_ready)
    tight = FetchOptions(disk_free=lambda _path: 1000)
    with _client(catalog_ready) as client, pytest.raises(InsufficientSpace, match="free"):
        fetch(client, MODEL, REVISION, out, tight)
    assert _grant_events(catalog_ready) == grants
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, REVISION, out)
    assert {f.path.name: f.reused for f in files}[SHARD] is False
    assert len(_grant_events(catalog_ready)) == len(grants) + 1, "only the missing file asks"


@pytest.mark.usefixtures("gateway_url")
def test_pinned_rerun_with_a_damaged_blob_asks_again_and_repairs_it(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, REVISION, cache, _hf(cache, include=(SHARD,)))
    blob = item.path.resolve()
    blob.write_bytes(b"\0" * blob.stat().st_size)
    with _client(catalog_ready) as client:
        [again] = fetch(client, MODEL, REVISION, cache, _hf(cache, include=(SHARD,)))
    assert not again.reused
    assert filecmp.cmp(model_dir / SHARD, again.path, shallow=False)
    assert len(_grant_events(catalog_ready)) == 2


@pytest.mark.usefixtures("gateway_url")
def test_record_naming_a_path_outside_the_output_is_ignored(
    catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with _client(catalog_ready) as client:
        fetch(client, MODEL, REVISION, out)
    [record] = (out / RECORD_DIR).rglob("*.json")
    body = json.loads(record.read_text())
    body["files"] = [{"path": "../../victim", "size": 1, "sha256": "0" * 64}]
    record.write_text(json.dumps(body))
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, REVISION, out)
    assert len(_grant_events(catalog_ready)) == 2, "an unusable record means asking the gateway"
    assert all(f.reused for f in files)
    assert not (tmp_path.parent / "victim").exists()


@pytest.mark.usefixtures("gateway_url")
def test_a_record_that_cannot_be_kept_does_not_fail_a_verified_fetch(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / RECORD_DIR).write_text("in the way")
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, REVISION, out)
    for item in files:
        assert filecmp.cmp(model_dir / item.path.name, item.path, shallow=False)
    assert (out / RECORD_DIR).read_text() == "in the way"
    assert _debris(out) == []


@pytest.mark.parametrize(
    ("code", "kind", "text"),
    [
        (errno.ENOSPC, InsufficientSpace, "run the same fetch again"),
        (errno.EDQUOT, InsufficientSpace, "free some space"),
        (errno.EROFS, InvalidInput, "cannot write /w/x.bin: Read-only file system"),
    ],
)
def test_disk_errors_become_one_line_domain_errors(
    code: int, kind: type[WeightgateError], text: str
) -> None:
    error = local_failure(OSError(code, os.strerror(code), "/w/x.bin"))
    assert type(error) is kind
    assert text in error.message


def test_cli_out_that_is_a_file_is_one_line_before_any_grant(
    gateway_url: str, catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "weights.bin"
    out.write_bytes(b"mine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env.update(WEIGHTGATE_URL=gateway_url, WEIGHTGATE_TOKEN=mint(catalog_ready))
    result = subprocess.run(
        [WEIGHTGATE, "fetch", MODEL, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, 2, "is not a directory")
    assert _grant_events(catalog_ready) == []
