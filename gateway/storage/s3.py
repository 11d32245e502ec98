"""The production storage backend: S3 or any S3-compatible store, through boto3.

Objects are pinned by version id, so the bucket must keep versions: a URL the
gateway signs names one ``VersionId`` and can only ever return the bytes that
were published under it, whatever is written to the key later.

``StoredObject.key`` is the key weightgate chose (``objects/<file version>``),
without the bucket prefix, just as ``LocalBlobStore`` keys are relative to its
root directory. The prefix is deployment configuration applied on every call,
so the catalog never records where a deployment keeps its bucket.

This module is the boundary for botocore: every vendor error is translated
here into ``Unavailable`` (unreachable store, credentials, throttling, 5xx) or
``NotFound`` (a missing object or version), and nothing else imports boto3 to
talk to storage. The client is ``Any`` because boto3 builds its methods at run
time; that ``Any`` stays inside this module.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gateway import aws
from gateway.clock import Clock
from gateway.errors import (
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    Unavailable,
    WeightgateError,
)
from gateway.storage.interfaces import ListedBlob, StoredObject, check_object_key

# The longest a storage URL may live, whatever the caller asks for: the
# gateway re-checks the grant (expiry, revocation) on every redirect, so a
# revoked grant keeps working for at most this long through a URL already out.
MAX_URL_LIFETIME_SECONDS = 60

# Multipart parts of 64 MiB: S3 allows 10,000 parts, so one object may reach
# 640 GiB. Part boundaries need not follow the sealed chunks (which start after
# the 56-byte header anyway): ranged GETs read across parts transparently.
DEFAULT_PART_SIZE = 64 << 20
# Parts uploaded at once. Each part in flight is held in memory so a failed
# request can be retried, and one more is being read from the source: an upload
# peaks near (concurrency + 1.5) parts (measured), about 290 MiB with these values.
DEFAULT_CONCURRENCY = 3
S3_MIN_PART_SIZE = 5 << 20  # every part but the last must be at least this large

# Calls that a request (or a readiness or health probe) waits on: the HEAD
# before each redirect and HEAD bucket. Both are small requests S3 answers in
# well under a second, so 3 s without a byte means a hung store, not a slow one.
# Two attempts in all (a retry rides out one transient 500 or a dropped
# keep-alive connection; backoff between them is at most 50 ms), so a store
# that accepts connections and never answers costs about 2 x 3 s, one that
# drops SYNs about 2 x 2 s, and one that refuses connections milliseconds.
# Before these, a hung store held a worker thread 3 x 30 s per request.
# botocore's ``max_attempts`` key would count retries only (3 means 4
# requests); ``total_max_attempts`` is the AWS_MAX_ATTEMPTS sense.
REQUEST_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"total_max_attempts": 2, "mode": "standard"},
    # SigV4 presigned URLs sign only the host header, so a client may add Range.
    signature_version="s3v4",
)
# Uploads (``weightgate publish``) and writes off the request path (checkpoint
# anchors): a 64 MiB part may wait a while for its answer, and an operator's
# upload is worth retrying. Still a short connect timeout and few attempts, so
# an unreachable store fails an upload within seconds rather than minutes.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=30,
    retries={"total_max_attempts": 3, "mode": "standard"},
    signature_version="s3v4",
)

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_MISSING = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound", "NoSuchUpload"})
_UPLOAD_MARK = "weightgate-upload"

T = TypeVar("T")


def parse_location(location: str) -> tuple[str, str]:
    """Split ``s3://BUCKET[/PREFIX]`` into bucket and prefix (``""`` when there is none)."""
    if not location.startswith("s3://"):
        raise InvalidInput(f"WEIGHTGATE_STORAGE {location!r} is not an s3:// location")
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInput(f"WEIGHTGATE_STORAGE: {bucket!r} is not a valid S3 bucket name")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise InvalidInput(
            f"WEIGHTGATE_STORAGE: prefix {prefix!r} must be path segments of letters, "
            "digits, '.', '_' and '-', each starting with a letter or digit"
        )
    return bucket, prefix


def make_client(
    *, endpoint_url: str | None, session: Any = None, config: Config = CLIENT_CONFIG
) -> Any:
    """An S3 client with weightgate's timeouts, credentials from the usual AWS chain.

    ``session`` is a ``boto3.session.Session``; the default one reads the
    environment, shared config files and instance roles. The region comes from
    the same places, or us-east-1 when none is configured. ``config`` is
    ``CLIENT_CONFIG`` (uploads, background writes) or ``REQUEST_CONFIG``
    (anything a request waits on).
    """
    if endpoint_url is not None:
        # S3-compatible stores (MinIO, test servers) are addressed by host name
        # or IP, where virtual-hosted buckets (bucket.host) do not resolve.
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return aws.make_client(
        "s3",
        endpoint_url=endpoint_url,
        endpoint_setting="WEIGHTGATE_S3_ENDPOINT_URL",
        config=config,
        session=session,
    )


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        client: Any,
        clock: Clock,
        upload_client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        """``client`` serves redirects and checks; ``upload_client`` (default: the same) ``put``.

        Two clients because botocore's timeouts are per client: redirects need
        ``REQUEST_CONFIG``'s, uploads ``CLIENT_CONFIG``'s.
        """
        bucket, prefix = parse_location(f"s3://{bucket}/{prefix}")
        if part_size < S3_MIN_PART_SIZE or concurrency < 1:
            raise InvalidInput("S3 parts must be at least 5 MiB and concurrency at least 1")
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._client = client
        self._uploads = client if upload_client is None else upload_client
        self._clock = clock
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            use_threads=True,
            # The CRT transfer client ignores the memory bounds set below.
            preferred_transfer_client="classic",
        )
        # Parts read from a stream wait in memory until a thread uploads them;
        # s3transfer's default of 10 would hold 640 MiB at this part size.
        self._transfer.max_in_memory_upload_chunks = concurrency
        self._versioning_checked = False

    def _full_key(self, key: str) -> str:
        return self._prefix + check_object_key(key)

    def put(self, key: str, source: BinaryIO) -> StoredObject:
        """Stream ``source`` to S3 (multipart above one part) and pin the version it became.

        ``source`` may be a non-seekable stream of unknown length; only a few
        parts of it are in memory at once, whatever its size. Errors raised by
        ``source`` itself propagate unchanged.
        """
        full_key = self._full_key(key)
        self._require_versioning()
        # A nonce in the object's metadata ties the version we read back to
        # this upload: if another writer replaced the key in between, we
        # refuse rather than pin someone else's bytes.
        nonce = secrets.token_hex(16)
        self._call(
            "upload the object",
            lambda: self._uploads.upload_fileobj(
                source,
                self._bucket,
                full_key,
                ExtraArgs={"Metadata": {_UPLOAD_MARK: nonce}},
                Config=self._transfer,
            ),
        )
        head = self._call(
            "read the object back",
            lambda: self._uploads.head_object(Bucket=self._bucket, Key=full_key),
        )
        if head.get("Metadata", {}).get(_UPLOAD_MARK) != nonce:
            raise Conflict(f"object {key} was overwritten while it was being stored")
        version = head.get("VersionId")
        if not version or version == "null":
            # Versioning was suspended after we checked: look again next time.
            self._versioning_checked = False
            raise InvalidInput(
                f"S3 bucket {self._bucket} gave no version id: versioning must stay enabled"
            )
        return StoredObject(key, str(version), int(head["ContentLength"]))

    def download_url(self, obj: StoredObject, expires_at: datetime) -> str:
        """A presigned GET for exactly ``obj.version``, valid until ``expires_at``, at most 60 s.

        The version is looked up first (one HEAD request per redirect; the
        client reuses a URL for all its ranges until it expires), so a missing
        object is a NotFound and an unreachable store an Unavailable here, at
        the gateway, rather than a redirect to a URL that cannot work.
        """
        full_key = self._full_key(obj.key)
        params = {"Bucket": self._bucket, "Key": full_key, "VersionId": obj.version}
        self._call("look up the object", lambda: self._client.head_object(**params))
        remaining = (expires_at - self._clock.now()).total_seconds()
        if remaining <= 0:
            raise Gone("the storage URL would already have expired")
        # Rounded up so that less than a second left still gives a usable URL;
        # it then outlives ``expires_at`` by less than one second.
        lifetime = min(MAX_URL_LIFETIME_SECONDS, max(1, math.ceil(remaining)))
        url: str = self._call(
            "sign a URL",
            lambda: self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=lifetime
            ),
        )
        return url

    def check(self) -> None:
        self._call(
            "reach the bucket",
            lambda: self._client.head_bucket(Bucket=self._bucket),
            missing=Unavailable,
        )

    def list_blobs(self, prefix: str) -> Iterator[ListedBlob]:
        """Every object version under ``prefix``, then every multipart upload never finished.

        Delete markers are skipped: they hold no bytes. An unfinished upload's
        size is the sum of the parts S3 kept, which it bills for until the
        upload is aborted.
        """
        full = self._prefix + prefix
        for page in self._pages(
            "list object versions", self._uploads.get_paginator("list_object_versions"), Prefix=full
        ):
            for version in page.get("Versions", []):
                yield ListedBlob(
                    str(version["Key"]).removeprefix(self._prefix),
                    str(version["VersionId"]),
                    int(version["Size"]),
                    version["LastModified"],
                )
        for page in self._pages(
            "list unfinished uploads",
            self._uploads.get_paginator("list_multipart_uploads"),
            Prefix=full,
        ):
            for upload in page.get("Uploads", []):
                key, upload_id = str(upload["Key"]), str(upload["UploadId"])
                yield ListedBlob(
                    key.removeprefix(self._prefix),
                    upload_id,
                    self._parts_size(key, upload_id),
                    upload["Initiated"],
                    complete=False,
                )

    def _parts_size(self, key: str, upload_id: str) -> int:
        paginator = self._uploads.get_paginator("list_parts")
        pages = self._pages("list an upload's parts", paginator, Key=key, UploadId=upload_id)
        return sum(int(part["Size"]) for page in pages for part in page.get("Parts", []))

    def _pages(self, action: str, paginator: Any, **params: str) -> Iterator[dict[str, Any]]:
        """A listing's pages one at a time (bounded memory), vendor errors translated.

        The caller names the operation where it makes the paginator, so the IAM
        policy test (tests/infra) can read every S3 call from the code.
        """
        pages = iter(paginator.paginate(Bucket=self._bucket, **params))
        while (page := self._call(action, lambda: next(pages, None))) is not None:
            yield page

    def delete(self, blob: ListedBlob) -> None:
        """Delete the version itself (not a delete marker over it), or abort the upload.

        Deleting by version id is permanent: the bytes are gone, not hidden.
        A bucket under Object Lock refuses, and that refusal is Unavailable.
        """
        full_key = self._full_key(blob.key)
        try:
            if blob.complete:
                self._call(
                    "delete an object version",
                    lambda: self._uploads.delete_object(
                        Bucket=self._bucket, Key=full_key, VersionId=blob.version
                    ),
                )
            else:
                self._call(
                    "abort an unfinished upload",
                    lambda: self._uploads.abort_multipart_upload(
                        Bucket=self._bucket, Key=full_key, UploadId=blob.version
                    ),
                )
        except NotFound:
            pass  # already gone: what was asked for holds

    def _require_versioning(self) -> None:
        # Checked once per process, before the first upload: a bucket whose
        # versioning is later suspended still serves the versions pinned so far.
        if self._versioning_checked:
            return
        answer = self._call(
            "read the bucket's versioning",
            lambda: self._uploads.get_bucket_versioning(Bucket=self._bucket),
        )
        if answer.get("Status") != "Enabled":
            raise InvalidInput(
                f"S3 bucket {self._bucket} must have versioning enabled: weightgate pins "
                "every object to its version id so a URL can only return published bytes"
            )
        self._versioning_checked = True

    def _call(
        self,
        action: str,
        operation: Callable[[], T],
        *,
        missing: type[WeightgateError] = NotFound,
    ) -> T:
        """Run one boto3 operation; vendor errors become domain errors and go no further.

        ``missing`` is what a 404 means: a missing object is NotFound, while
        a missing bucket leaves the store unusable (Unavailable).
        """
        try:
            return operation()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            error: type[WeightgateError] = missing if code in _MISSING else Unavailable
            message = f"S3 bucket {self._bucket}: could not {action} ({code}, HTTP {status})"
        except (BotoCoreError, Boto3Error) as exc:
            # No answer at all: unreachable endpoint, timeout, no credentials.
            error, message = Unavailable, f"S3 bucket {self._bucket}: could not {action}: {exc}"
        # The message is for the operator's log; clients get the public line only.
        public = "the stored object is missing" if error is NotFound else "storage is unavailable"
        raise error(message, public=public)
