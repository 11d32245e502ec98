"""The S3 adapter's own promises: version pinning, URL lifetime, and vendor errors kept inside."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.api.background import free_port
from gateway.bootstrap import build_storage
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.errors import (
    Conflict,
    Gone,
    IntegrityError,
    InvalidInput,
    NotFound,
    Unavailable,
    WeightgateError,
)
from gateway.storage.interfaces import StoredObject
from gateway.storage.s3 import S3BlobStore, make_client, parse_location
from tests.storage.conftest import (
    MotoServer,
    create_bucket,
    isolate_aws_environment,
    make_s3_store,
    query,
    running_moto,
    s3_client,
)
from tests.storage.sources import BreaksAfter

if TYPE_CHECKING:
    pass


@pytest.fixture
def store(s3: Any, bucket: str, clock: FixedClock) -> S3BlobStore:
    return make_s3_store(s3, bucket, clock, prefix="weights/prod")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)


def _put(store: S3BlobStore, key: str, data: bytes) -> StoredObject:
    return store.put(key, io.BytesIO(data))


def test_put_pins_the_version_s3_assigned_under_the_prefix(
    store: S3BlobStore, s3: Any, bucket: str
) -> None:
    obj = _put(store, "objects/a", b"ciphertext" * 100)
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["Key"], v["VersionId"], v["Size"]) for v in versions] == [
        ("weights/prod/objects/a", obj.version, 1000)
    ]
    # The catalog records the key weightgate chose; the prefix is deployment configuration.
    assert obj == StoredObject("objects/a", obj.version, 1000)


def test_signed_url_names_the_version_and_signs_only_the_host(
    store: S3BlobStore, clock: FixedClock
) -> None:
    obj = _put(store, "objects/a", b"x")
    url = store.download_url(obj, clock.now() + timedelta(seconds=30))
    params = query(url)
    assert params["versionId"] == obj.version
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    # Only host is signed, so the client's Range header cannot invalidate the URL.
    assert params["X-Amz-SignedHeaders"] == "host"
    assert "/weights/prod/objects/a?" in url


@pytest.mark.parametrize(
    ("remaining", "signed"),
    [(17.0, 17), (0.2, 1), (59.4, 60), (60.0, 60), (61.0, 60), (3600.0, 60), (86_400.0, 60)],
)
def test_url_lifetime_comes_from_the_injected_clock_and_is_capped(
    store: S3BlobStore, clock: FixedClock, remaining: float, signed: int
) -> None:
    obj = _put(store, "objects/a", b"x")
    clock.advance(timedelta(days=3))  # the store must read this clock, not the system's
    url = store.download_url(obj, clock.now() + timedelta(seconds=remaining))
    assert int(query(url)["X-Amz-Expires"]) == signed


@pytest.mark.parametrize("remaining", [0.0, -1.0, -3600.0])
def test_no_url_is_signed_for_a_moment_already_past(
    store: S3BlobStore, clock: FixedClock, remaining: float
) -> None:
    obj = _put(store, "objects/a", b"x")
    with pytest.raises(Gone):
        store.download_url(obj, clock.now() + timedelta(seconds=remaining))


def test_url_for_a_version_that_is_not_stored_is_not_found(
    store: S3BlobStore, clock: FixedClock
) -> None:
    obj = _put(store, "objects/a", b"x")
    later = clock.now() + timedelta(seconds=30)
    with pytest.raises(NotFound):
        store.download_url(StoredObject(obj.key, "not-a-version-of-this-key", 1), later)
    with pytest.raises(NotFound):
        store.download_url(StoredObject("objects/never-written", obj.version, 1), later)


@pytest.mark.parametrize("versioning", [None, "Suspended"])
def test_bucket_without_versioning_is_refused_before_anything_is_uploaded(
    s3: Any, clock: FixedClock, versioning: str | None
) -> None:
    # Without versions a URL would serve whatever was written to the key last.
    bucket = create_bucket(s3, versioning=versioning)
    store = make_s3_store(s3, bucket, clock)
    with pytest.raises(InvalidInput, match="versioning"):
        _put(store, "objects/a", b"x")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_versioning_is_read_once_not_on_every_upload(store: S3BlobStore, s3: Any) -> None:
    calls: list[str] = []
    s3.meta.events.register(
        "before-call.s3.GetBucketVersioning", lambda **_: calls.append("versioning")
    )
    _put(store, "objects/a", b"x")
    _put(store, "objects/b", b"y")
    assert calls == ["versioning"]


def test_key_overwritten_during_upload_is_not_pinned(
    store: S3BlobStore, s3: Any, bucket: str
) -> None:
    # Another writer replaces the key between our upload and our read-back:
    # pinning the version we read would bind someone else's bytes to our key.
    intruder = s3_client(s3.meta.endpoint_url)

    def overwrite(**_: Any) -> None:
        intruder.put_object(Bucket=bucket, Key="weights/prod/objects/a", Body=b"other bytes")

    s3.meta.events.register_first("before-call.s3.HeadObject", overwrite)
    with pytest.raises(Conflict):
        _put(store, "objects/a", b"ours")


def test_source_error_propagates_unchanged_and_leaves_no_parts(
    store: S3BlobStore, s3: Any, bucket: str
) -> None:
    with pytest.raises(IntegrityError, match="source went bad"):
        store.put(
            "objects/a", io.BufferedReader(BreaksAfter(12 << 20, IntegrityError("source went bad")))
        )
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


def _assert_no_vendor_error(error: pytest.ExceptionInfo[WeightgateError]) -> None:
    # The botocore exception must not travel on as a cause or context either.
    assert error.value.__cause__ is None
    assert error.value.__context__ is None


def _every_operation_is_unavailable(store: S3BlobStore, clock: FixedClock) -> None:
    with pytest.raises(Unavailable) as failed:
        store.check()
    _assert_no_vendor_error(failed)
    with pytest.raises(Unavailable) as failed:
        _put(store, "objects/a", b"x")
    _assert_no_vendor_error(failed)
    with pytest.raises(Unavailable) as failed:
        store.download_url(StoredObject("objects/a", "v1", 1), clock.now() + timedelta(seconds=9))
    _assert_no_vendor_error(failed)


def test_store_that_goes_down_fails_closed_as_unavailable(clock: FixedClock) -> None:
    with running_moto() as server:
        client = s3_client(server.url)
        store = make_s3_store(client, create_bucket(client), clock)
        store.check()
        server.stop()
        _every_operation_is_unavailable(store, clock)


def test_store_that_never_answered_fails_closed_as_unavailable(clock: FixedClock) -> None:
    client = s3_client(f"http://127.0.0.1:{free_port()}")
    _every_operation_is_unavailable(make_s3_store(client, "wg-nobody-home", clock), clock)


def test_missing_bucket_makes_the_store_unavailable(s3: Any, clock: FixedClock) -> None:
    with pytest.raises(Unavailable, match="404"):
        make_s3_store(s3, "wg-no-such-bucket", clock).check()


def test_missing_credentials_make_the_store_unavailable(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FixedClock
) -> None:
    isolate_aws_environment(monkeypatch, tmp_path, credentials=False)
    client = make_client(endpoint_url=moto.url)
    with pytest.raises(Unavailable, match="credentials") as failed:
        make_s3_store(client, "wg-any", clock).check()
    _assert_no_vendor_error(failed)


@pytest.mark.usefixtures("aws_env")
def test_client_is_configured_to_give_up_fast(moto: MotoServer) -> None:
    config = make_client(endpoint_url=moto.url, session=None).meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 30)
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert config.signature_version == "s3v4"
    assert config.s3 == {"addressing_style": "path"}


@pytest.mark.parametrize(
    ("location", "parsed"),
    [
        ("s3://weights", ("weights", "")),
        ("s3://weights/", ("weights", "")),
        ("s3://weights/prod/v1/", ("weights", "prod/v1")),
        ("s3://my.weights-01/Team_A/models", ("my.weights-01", "Team_A/models")),
    ],
)
def test_location_names_a_bucket_and_an_optional_prefix(
    location: str, parsed: tuple[str, str]
) -> None:
    assert parse_location(location) == parsed


@pytest.mark.parametrize(
    "location",
    [
        "s3://",
        "s3://ab",
        "s3://Weights",
        "s3://weights..x",
        "s3://weights/../other-bucket",
        "s3://weights/prod//x",
        "s3://weights/./x",
        "s3://weights/pré",
        "file:///tmp/x",
    ],
)
def test_malformed_location_is_refused(location: str) -> None:
    with pytest.raises(InvalidInput):
        parse_location(location)


def test_part_size_below_the_s3_minimum_is_refused(s3: Any, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput):
        S3BlobStore("wg-any", "", client=s3, clock=clock, part_size=1 << 20)


def test_malformed_endpoint_url_is_refused() -> None:
    with pytest.raises(InvalidInput, match="WEIGHTGATE_S3_ENDPOINT_URL"):
        make_client(endpoint_url="not a url")


@pytest.mark.usefixtures("aws_env")
def test_s3_location_builds_an_s3_store_in_us_east_1_by_default(
    settings: Settings, clock: FixedClock, moto: MotoServer, s3: Any, bucket: str
) -> None:
    configured = settings.model_copy(
        update={"storage": f"s3://{bucket}/weights", "s3_endpoint_url": moto.url}
    )
    store = build_storage(configured, b"k" * 32, clock=clock)
    assert isinstance(store, S3BlobStore)
    store.check()
    obj = store.put("objects/a", io.BytesIO(b"x"))
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == [
        "weights/objects/a"
    ]
    url = store.download_url(obj, clock.now() + timedelta(seconds=10))
    assert "/us-east-1/s3/aws4_request" in query(url)["X-Amz-Credential"]


def test_unknown_storage_scheme_is_refused(settings: Settings, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput, match="s3://BUCKET"):
        build_storage(settings.model_copy(update={"storage": "gs://x"}), b"k" * 32, clock=clock)


def test_upload_a_killed_process_left_unfinished_is_listed_and_aborted(
    store: S3BlobStore, s3: Any, bucket: str
) -> None:
    # A publish killed outright (no chance to abort) leaves parts S3 keeps, and
    # bills for, but lists nowhere among the objects.
    key = "weights/prod/objects/" + "ab" * 16
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"z" * 1234)
    [listed] = store.list_blobs("objects/")
    assert (listed.key, listed.version, listed.size, listed.complete) == (
        "objects/" + "ab" * 16,
        upload,
        1234,
        False,
    )
    store.delete(listed)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert list(store.list_blobs("objects/")) == []


def test_deleting_a_version_leaves_no_delete_marker_hiding_bytes(
    store: S3BlobStore, s3: Any, bucket: str
) -> None:
    _put(store, "objects/gone", b"ciphertext")
    [listed] = store.list_blobs("objects/")
    store.delete(listed)
    answer = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in answer
    assert "DeleteMarkers" not in answer
