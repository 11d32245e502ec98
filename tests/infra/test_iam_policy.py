"""The gateway's IAM policy grants exactly the S3 and KMS calls gateway/ makes, on their resources.

The calls come from the code (tests/infra/boto_calls.py), so a new boto3 call
without a policy change fails here, and so does a grant no code needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import terraform
from tests.infra.boto_calls import AwsCall, UnreadableCall, calls_in_source, calls_in_tree
from tests.infra.iam import Grant, UnmappedOperation, grants

REPO = Path(__file__).resolve().parents[2]
# Which bucket each module's S3 client addresses: WEIGHTGATE_STORAGE and
# WEIGHTGATE_CHECKPOINT_ANCHOR. A new module calling S3 must be added here.
BUCKET_OF_MODULE = {
    "gateway/storage/s3.py": "aws_s3_bucket.weights",
    "gateway/audit/anchors.py": "aws_s3_bucket.audit",
}
KEYSTORE_KEY = "aws_kms_key.kek"  # WEIGHTGATE_KEYSTORE=kms:alias/<name>-kek


def policy_grants() -> set[Grant]:
    tf = terraform.load()
    document = tf["data.aws_iam_policy_document"]["gateway"]
    granted: set[Grant] = set()
    for statement in document["statement"]:
        assert statement.get("effect", "Allow") == "Allow"
        assert "not_actions" not in statement and "not_resources" not in statement
        for resource in statement["resources"]:
            granted |= {(terraform.reference(resource), action) for action in statement["actions"]}
    return granted


def sse_kms_keys() -> dict[str, str]:
    """Each bucket encrypted with SSE-KMS, and its key, as the Terraform configures them."""
    tf = terraform.load()
    keys: dict[str, str] = {}
    for body in tf["resource.aws_s3_bucket_server_side_encryption_configuration"].values():
        (rule,) = body["rule"]
        (default,) = rule["apply_server_side_encryption_by_default"]
        if default["sse_algorithm"] == "aws:kms":
            bucket = terraform.reference(body["bucket"])
            keys[bucket] = terraform.reference(default["kms_master_key_id"])
    return keys


def needed_grants(calls: list[AwsCall]) -> set[Grant]:
    return grants(
        calls,
        bucket_of_module=BUCKET_OF_MODULE,
        key_of_bucket=sse_kms_keys(),
        keystore_key=KEYSTORE_KEY,
    )


def compare(calls: list[AwsCall]) -> tuple[set[Grant], set[Grant]]:
    """(needed but not granted, granted but not needed)."""
    needed, granted = needed_grants(calls), policy_grants()
    return needed - granted, granted - needed


def test_the_policy_grants_exactly_what_the_code_calls() -> None:
    calls = calls_in_tree(REPO)
    # The derivation found the storage and anchor calls at all (a broken parser finds none).
    assert {c.module for c in calls} >= set(BUCKET_OF_MODULE)
    missing, excess = compare(calls)
    assert not missing, f"the code calls these, the policy does not grant them: {sorted(missing)}"
    assert not excess, f"the policy grants these, no code calls them: {sorted(excess)}"


def test_a_new_s3_call_without_a_policy_change_fails() -> None:
    extra = calls_in_source(
        "def purge(client):\n    client.delete_object(Bucket='b', Key='k')\n",
        "gateway/storage/s3.py",
    )
    missing, _ = compare(calls_in_tree(REPO) + extra)
    assert missing == {("aws_s3_bucket.weights/*", "s3:DeleteObject")}


def test_a_new_kms_call_without_a_policy_change_fails() -> None:
    # The keystore's calls are in the code; the policy grants exactly those.
    keystore = {(c.service, c.operation) for c in calls_in_tree(REPO) if c.service == "kms"}
    assert {("kms", "Encrypt"), ("kms", "Decrypt")} <= keystore
    # ReEncrypt needs two actions the policy does not grant.
    rotate = calls_in_source(
        "def rotate(kms, blob):\n"
        "    return kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId='k')\n",
        "gateway/crypto/kms.py",
    )
    missing, _ = compare(calls_in_tree(REPO) + rotate)
    assert missing == {(KEYSTORE_KEY, "kms:ReEncryptFrom"), (KEYSTORE_KEY, "kms:ReEncryptTo")}


def test_calls_that_are_not_aws_calls_are_not_counted() -> None:
    source = (
        "def seal(key, nonce, data, signer, kms):\n"
        "    AESGCM(key).encrypt(nonce, data, None)\n"  # positional: cryptography, not KMS
        "    signer.sign(data)\n"
        "    return kms.encrypt(KeyId='k', Plaintext=data)\n"
    )
    found = calls_in_source(source, "gateway/crypto/kms.py")
    assert [(c.line, c.operation) for c in found] == [(4, "Encrypt")]


def test_paginators_presigned_urls_and_spread_parameters_are_read() -> None:
    source = (
        "def f(client, v):\n"
        "    params = {'Bucket': 'b', 'Key': 'k', 'VersionId': v}\n"
        "    client.head_object(**params)\n"
        "    client.generate_presigned_url('get_object', Params=params, ExpiresIn=60)\n"
        "    client.get_paginator('list_object_versions').paginate(Bucket='b')\n"
    )
    found = calls_in_source(source, "gateway/storage/s3.py")
    assert [(c.operation, c.parameters) for c in found] == [
        ("HeadObject", frozenset({"Bucket", "Key", "VersionId"})),
        ("GetObject", frozenset({"Bucket", "Key", "VersionId"})),
        ("ListObjectVersions", frozenset()),
    ]
    needed = needed_grants(found)
    assert ("aws_s3_bucket.weights/*", "s3:GetObjectVersion") in needed
    assert ("aws_s3_bucket.weights/*", "s3:GetObject") not in needed
    assert ("aws_kms_key.storage", "kms:Decrypt") in needed  # the presigned GET, on SSE-KMS


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def f(c, op):\n    c.get_paginator(op)\n", UnreadableCall),
        ("def f(c, p):\n    c.put_object(**p)\n", UnreadableCall),
        ("def f(session):\n    session.resource('s3')\n", UnreadableCall),
        ("def f(c):\n    c.restore_object(Bucket='b', Key='k')\n", UnmappedOperation),
    ],
    ids=["operation-in-a-variable", "hidden-parameters", "boto3-resource", "unmapped-operation"],
)
def test_calls_that_cannot_be_derived_fail_loudly(source: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        needed_grants(calls_in_source(source, "gateway/storage/s3.py"))


def test_a_module_calling_s3_must_say_which_bucket() -> None:
    calls = calls_in_source("def f(c):\n    c.head_bucket(Bucket='b')\n", "gateway/other.py")
    with pytest.raises(UnmappedOperation, match="which bucket"):
        needed_grants(calls)
