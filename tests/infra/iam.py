"""The IAM actions (and the resources they apply to) that each derived AWS call needs.

S3 operation names and IAM action names differ (HeadBucket is s3:ListBucket,
a GET of a given VersionId is s3:GetObjectVersion, a PUT with Object Lock
headers also needs s3:PutObjectRetention), so S3 has a table; an operation
missing from it fails the test until someone says what it needs. KMS actions
are the operation names. On a bucket encrypted with SSE-KMS, S3 calls KMS on
the caller's behalf and with the caller's permissions, so those KMS actions
are derived too, on the bucket's key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.infra.boto_calls import AwsCall, UnreadableCall

Grant = tuple[str, str]  # (terraform resource, e.g. "aws_s3_bucket.weights/*", IAM action)

_BUCKET_LEVEL: dict[str, str] = {
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
}
_PARTS: dict[str, str] = {
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
}
# What S3 asks of an SSE-KMS key for the caller: a data key to write, a decrypt to
# read (not for HEAD) and to assemble a multipart upload.
_SSE_KMS: dict[str, tuple[str, ...]] = {
    "PutObject": ("kms:GenerateDataKey",),
    "CreateMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
    "UploadPart": ("kms:GenerateDataKey", "kms:Decrypt"),
    "CompleteMultipartUpload": ("kms:Decrypt",),
    "GetObject": ("kms:Decrypt",),
}


class UnmappedOperation(Exception):
    """An AWS operation whose IAM actions nobody has written down yet."""


def _needs_parameters(call: AwsCall) -> frozenset[str]:
    if call.parameters is None:
        raise UnreadableCall(
            f"{call}: its parameters decide its IAM actions, and **params hides them"
        )
    return call.parameters


def s3_object_actions(call: AwsCall) -> set[str]:
    operation = call.operation
    if operation in _PARTS:
        return {_PARTS[operation]}
    if operation in {"GetObject", "HeadObject"}:
        versioned = "VersionId" in _needs_parameters(call)
        return {"s3:GetObjectVersion" if versioned else "s3:GetObject"}
    if operation in {"PutObject", "CreateMultipartUpload"}:
        parameters = _needs_parameters(call)
        actions = {"s3:PutObject"}
        if parameters & {"ObjectLockMode", "ObjectLockRetainUntilDate"}:
            actions.add("s3:PutObjectRetention")
        if "ObjectLockLegalHoldStatus" in parameters:
            actions.add("s3:PutObjectLegalHold")
        return actions
    if operation == "DeleteObject":
        versioned = "VersionId" in _needs_parameters(call)
        return {"s3:DeleteObjectVersion" if versioned else "s3:DeleteObject"}
    raise UnmappedOperation(f"{call}: which IAM actions does S3 {operation} need?")


def grants(
    calls: Iterable[AwsCall],
    *,
    bucket_of_module: Mapping[str, str],
    key_of_bucket: Mapping[str, str],
    keystore_key: str,
) -> set[Grant]:
    """Every (resource, action) the calls need.

    ``bucket_of_module``: which bucket resource each module's S3 calls address;
    ``key_of_bucket``: each SSE-KMS bucket's key; ``keystore_key``: the key of
    every direct KMS call.
    """
    needed: set[Grant] = set()
    for call in calls:
        if call.service == "kms":
            actions = (
                ["kms:ReEncryptFrom", "kms:ReEncryptTo"]
                if call.operation == "ReEncrypt"
                else [f"kms:{call.operation}"]
            )
            needed |= {(keystore_key, action) for action in actions}
            continue
        if call.module not in bucket_of_module:
            raise UnmappedOperation(f"{call}: which bucket does {call.module} address?")
        bucket = bucket_of_module[call.module]
        if call.operation in _BUCKET_LEVEL:
            needed.add((bucket, _BUCKET_LEVEL[call.operation]))
            continue
        needed |= {(f"{bucket}/*", action) for action in s3_object_actions(call)}
        if bucket in key_of_bucket:
            needed |= {(key_of_bucket[bucket], a) for a in _SSE_KMS.get(call.operation, ())}
    return needed
