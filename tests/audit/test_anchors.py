"""Anchor stores: checkpoints kept outside the database, so a rewritten log is caught.

One contract suite runs against both stores (a directory, and S3 with Object
Lock on a real moto server); then each store's own attacks. What moto does
with Object Lock, as found here (moto 5.2):

* a COMPLIANCE-locked version cannot be deleted by version id, with or without
  ``BypassGovernanceRetention`` (AccessDenied), as on AWS;
* a delete without a version id only adds a delete marker, as on AWS;
* a put with Object Lock headers into a bucket without Object Lock is refused
  (InvalidRequest), as on AWS;
* GetObjectRetention is not implemented by the server (the request falls
  through to GetObject, which botocore reads as a 500), so retention is read
  from HEAD, which carries the same ``x-amz-object-lock-*`` headers;
* unlike AWS, moto lets PutObjectRetention shorten or downgrade a COMPLIANCE
  retention, so that AWS guarantee cannot be tested here.
"""

from __future__ import annotations

import hashlib
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.api.background import free_port
from gateway.audit import checkpoint
from gateway.audit.anchors import (
    DEFAULT_RETENTION_DAYS,
    AnchoredCheckpoint,
    AnchorStore,
    DirectoryAnchors,
    S3Anchors,
    open_anchor_store,
)
from gateway.clock import FixedClock
from gateway.errors import InvalidInput, Unavailable
from tests.storage.conftest import (
    REGION,
    MotoServer,
    isolate_aws_environment,
    running_moto,
    s3_client,
)

ORIGIN = "weightgate.test/audit"
KEY = Ed25519PrivateKey.generate()
PREFIX = "audit/prod"


def note(size: int, root: bytes | None = None) -> str:
    """A checkpoint signed by the audit key, as the publisher would anchor it."""
    root = root or hashlib.sha256(f"root {size}".encode()).digest()
    return checkpoint.sign(checkpoint.Checkpoint(ORIGIN, size, root), ORIGIN, KEY)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """One server for this module; each test gets its own bucket."""
    with running_moto() as server:
        yield server


def locked_bucket(client: Any) -> str:
    bucket = f"wg-anchors-{uuid.uuid4().hex[:12]}"
    client.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    return bucket


@dataclass
class S3Target:
    store: S3Anchors
    client: Any  # a client of the same bucket, to act as the operator behind the store's back
    bucket: str


@pytest.fixture
def s3(moto: MotoServer, clock: FixedClock) -> S3Target:
    client = s3_client(moto.url)
    bucket = locked_bucket(client)
    return S3Target(S3Anchors(bucket, PREFIX, client, clock), client, bucket)


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AnchorStore:
    if request.param == "directory":
        return DirectoryAnchors(tmp_path / "anchors")
    target: S3Target = request.getfixturevalue("s3")
    return target.store


def anchored(store: AnchorStore) -> list[AnchoredCheckpoint]:
    return list(store.checkpoints())


# The contract, for every store.


def test_anchored_checkpoint_comes_back_byte_for_byte(store: AnchorStore) -> None:
    # The verifier checks the log's signature on what comes back: one changed
    # byte (a re-encoded dash, a lost newline) would turn an anchor into noise.
    signed = note(17)
    store.put(17, signed)
    [found] = anchored(store)
    assert (found.size, found.note) == (17, signed)
    assert checkpoint.verify(found.note, ORIGIN, KEY.public_key()).size == 17


def test_anchors_are_listed_smallest_tree_first(store: AnchorStore) -> None:
    sizes = [30, 1, 1_000_000_000_000, 7, 20]  # one past the twelve padded digits
    for size in sizes:
        store.put(size, note(size))
    found = anchored(store)
    assert [a.size for a in found] == sorted(sizes)
    assert [a.note for a in found] == [note(size) for size in sorted(sizes)]


def test_republishing_the_same_checkpoint_loses_nothing(store: AnchorStore) -> None:
    # The publisher retries after a crash between anchoring and recording it.
    store.put(5, note(5))
    store.put(5, note(5))
    found = anchored(store)
    assert {(a.size, a.note) for a in found} == {(5, note(5))}
    # A directory holds one file; S3 keeps a second version of the same text.
    assert len(found) == (2 if isinstance(store, S3Anchors) else 1)


def test_fresh_store_passes_its_check_and_holds_no_anchors(store: AnchorStore) -> None:
    store.check()
    assert anchored(store) == []


# The directory: the layout deployments already have on disk.


def test_anchor_files_use_the_deployed_layout_and_leave_no_partial_files(tmp_path: Path) -> None:
    directory = tmp_path / "anchors"
    DirectoryAnchors(directory).put(42, note(42))
    assert [p.name for p in directory.iterdir()] == ["000000000042.txt"]
    assert (directory / "000000000042.txt").read_text(encoding="utf-8") == note(42)
    # Created private: anchors say how much the log held and when.
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_checkpoint_files_of_existing_deployments_count_cosignatures_and_all(
    tmp_path: Path,
) -> None:
    # Deployments already keep one file per size in this layout, some with
    # witness cosignature lines appended; they are anchors as they stand.
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    witness = Ed25519PrivateKey.generate()
    line = checkpoint.cosign(note(9), "witness.test/w1", witness, 1_767_225_600)
    cosigned = checkpoint.add_signature(note(9), line)
    (directory / "000000000003.txt").write_text(note(3), encoding="utf-8")
    (directory / "000000000009.txt").write_text(cosigned, encoding="utf-8")
    found = anchored(DirectoryAnchors(directory))
    assert [(a.size, a.note) for a in found] == [(3, note(3)), (9, cosigned)]
    assert found[1].where == str(directory / "000000000009.txt")
    assert checkpoint.verify_cosignature(found[1].note, "witness.test/w1", witness.public_key())


def test_crash_leftovers_and_stray_files_are_not_taken_for_anchors(tmp_path: Path) -> None:
    store = DirectoryAnchors(tmp_path / "anchors")
    store.put(2, note(2))
    for stray in (".000000000009.txt.x1y2.part", "000000000009.txt.part", "notes.txt", "9.txt"):
        (tmp_path / "anchors" / stray).write_text("not a checkpoint", encoding="utf-8")
    assert [a.size for a in anchored(store)] == [2]


def test_anchor_directory_that_cannot_be_created_fails_put_and_check(tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits: a regular file where
    # the directory should be stops root as well.
    blocker = tmp_path / "anchors"
    blocker.write_text("a file, not a directory", encoding="utf-8")
    for store in (DirectoryAnchors(blocker), DirectoryAnchors(blocker / "below")):
        with pytest.raises(Unavailable, match=str(blocker)):
            store.put(1, note(1))
        with pytest.raises(Unavailable, match="not writable"):
            store.check()
    assert blocker.read_text(encoding="utf-8") == "a file, not a directory"


def test_mistyped_anchor_directory_is_not_an_empty_store(tmp_path: Path) -> None:
    # Verifying against a directory that does not exist must not pass for
    # lack of anchors to contradict the log.
    with pytest.raises(Unavailable, match="could not read"):
        anchored(DirectoryAnchors(tmp_path / "no-such-directory"))


# S3 with Object Lock: anchors the operator of the database cannot take back.


def test_anchor_is_locked_in_compliance_mode_for_the_retention_period(
    s3: S3Target, clock: FixedClock
) -> None:
    s3.store.put(8, note(8))
    [found] = anchored(s3.store)
    key = f"{PREFIX}/checkpoints/000000000008.txt"
    version = found.where.removeprefix(f"s3://{s3.bucket}/{key}?versionId=")
    assert version and version != found.where
    # HEAD, because moto's server does not implement GetObjectRetention.
    head = s3.client.head_object(Bucket=s3.bucket, Key=key, VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retained_until = clock.now() + timedelta(days=DEFAULT_RETENTION_DAYS)
    assert head["ObjectLockRetainUntilDate"] == retained_until


def test_operator_cannot_delete_an_anchored_version(s3: S3Target) -> None:
    s3.store.put(8, note(8))
    [found] = anchored(s3.store)
    key, _, version = found.where.removeprefix(f"s3://{s3.bucket}/").partition("?versionId=")
    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.client.delete_object(
                Bucket=s3.bucket, Key=key, VersionId=version, BypassGovernanceRetention=bypass
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    answer = s3.client.delete_objects(
        Bucket=s3.bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]}
    )
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    assert anchored(s3.store) == [found]


def test_delete_marker_does_not_hide_an_anchor(s3: S3Target) -> None:
    s3.store.put(8, note(8))
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{PREFIX}/checkpoints/000000000008.txt")
    assert [(a.size, a.note) for a in anchored(s3.store)] == [(8, note(8))]


def test_forked_checkpoint_under_an_anchored_size_is_kept_beside_the_first(s3: S3Target) -> None:
    # A rewritten log signed again at the same size: S3 keeps both versions,
    # oldest first, and the verifier sees the fork instead of the rewrite.
    honest, forked = note(12), note(12, root=hashlib.sha256(b"rewritten").digest())
    s3.store.put(12, honest)
    s3.store.put(12, forked)
    found = anchored(s3.store)
    assert [(a.size, a.note) for a in found] == [(12, honest), (12, forked)]
    assert found[0].where != found[1].where
    assert all("?versionId=" in a.where for a in found)


def test_anchors_under_another_prefix_are_not_this_logs(s3: S3Target, clock: FixedClock) -> None:
    other = S3Anchors(s3.bucket, "", s3.client, clock)
    other.put(4, note(4))
    s3.store.put(6, note(6))
    assert [a.size for a in anchored(s3.store)] == [6]
    [bare] = anchored(other)
    assert bare.where.startswith(f"s3://{s3.bucket}/checkpoints/000000000004.txt?versionId=")


def test_bucket_without_object_lock_is_refused_loudly(moto: MotoServer, clock: FixedClock) -> None:
    # Versioning alone lets the operator delete any version: not an anchor.
    client = s3_client(moto.url)
    bucket = f"wg-plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = S3Anchors(bucket, PREFIX, client, clock)
    with pytest.raises(Unavailable, match=f"s3://{bucket}/{PREFIX}.*Object Lock"):
        store.check()
    with pytest.raises(Unavailable, match=r"Object ?Lock"):
        store.put(1, note(1))
    assert "Versions" not in client.list_object_versions(Bucket=bucket)


def test_missing_bucket_fails_the_check(moto: MotoServer, clock: FixedClock) -> None:
    store = S3Anchors("wg-no-such-bucket", PREFIX, s3_client(moto.url), clock)
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        store.check()
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        anchored(store)


def test_unreachable_anchor_store_fails_fast_and_never_reports_success(clock: FixedClock) -> None:
    # Nothing listens on this loopback port: the connection is refused.
    store = S3Anchors("wg-anchors", PREFIX, s3_client(f"http://127.0.0.1:{free_port()}"), clock)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="s3://wg-anchors/audit/prod: could not anchor"):
        store.put(1, note(1))
    assert time.monotonic() - started < 10
    with pytest.raises(Unavailable):
        store.check()
    with pytest.raises(Unavailable):
        anchored(store)


# Opening a store from the --anchors URL.


def test_anchor_urls_open_the_store_they_name(
    moto: MotoServer, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (tmp_path / "anchors").as_uri()
    directory = open_anchor_store(url, clock=clock)
    assert isinstance(directory, DirectoryAnchors)
    assert directory.location == url
    directory.put(3, note(3))
    assert (tmp_path / "anchors" / "000000000003.txt").is_file()

    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)
    bucket = locked_bucket(s3_client(moto.url))
    remote = open_anchor_store(f"s3://{bucket}/{PREFIX}", clock=clock, s3_endpoint_url=moto.url)
    assert isinstance(remote, S3Anchors)
    assert remote.location == f"s3://{bucket}/{PREFIX}"
    remote.check()
    remote.put(3, note(3))
    assert [a.note for a in anchored(remote)] == [note(3)]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/var/lib/weightgate/anchors",
        "file://relative/anchors",
        "file:anchors",
        "https://anchors.example/checkpoints",
        "s3://",
        "s3://Not_A_Bucket/prefix",
        "s3://bucket/../escape",
    ],
)
def test_anchor_url_that_names_no_store_is_refused(url: str, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput, match=r"file:///.*s3://"):
        open_anchor_store(url, clock=clock)


def test_retention_shorter_than_a_day_is_refused(moto: MotoServer, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput):
        S3Anchors("wg-anchors", PREFIX, s3_client(moto.url), clock, retention_days=0)
