"""infra/terraform: formatted, parsed, the buckets and keys the gateway relies on, and checkov.

``terraform validate`` and ``plan`` need the AWS provider, which cannot be
downloaded here; ``terraform fmt -check``, python-hcl2 and checkov read the
files themselves.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.infra import terraform
from tests.infra.tools import tool

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
README = INFRA / "README.md"
CHECKOV_FRAMEWORKS = ["terraform", "kubernetes", "dockerfile", "secrets"]


def terraform_fmt_check(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool("terraform")), "fmt", "-check", "-diff", "-no-color", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_terraform_fmt_check_passes() -> None:
    result = terraform_fmt_check(terraform.TERRAFORM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_fmt_check_catches_a_misaligned_file(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "a" {\n  type = string\n  default     = "x"\n}\n')
    result = terraform_fmt_check(tmp_path)
    assert result.returncode != 0
    assert "main.tf" in result.stdout


def test_the_weights_bucket_is_versioned_private_and_encrypted_with_kms() -> None:
    tf = terraform.load()
    bucket = "aws_s3_bucket.weights"
    assert settings_of(tf, "aws_s3_bucket_versioning", bucket)["versioning_configuration"] == [
        {"status": "Enabled"}
    ]
    assert_private_and_kms_encrypted(tf, bucket)


def test_the_audit_bucket_has_object_lock_in_compliance_mode() -> None:
    tf = terraform.load()
    bucket = "aws_s3_bucket.audit"
    assert tf["resource.aws_s3_bucket"]["audit"]["object_lock_enabled"] is True
    lock = settings_of(tf, "aws_s3_bucket_object_lock_configuration", bucket)
    ((retention,),) = [rule["default_retention"] for rule in lock["rule"]]
    assert retention["mode"] == "COMPLIANCE"
    assert retention["days"] == "${var.checkpoint_retention_days}"
    # The gateway's own default retention (Settings.checkpoint_retention_days) fits in it.
    variables = (terraform.TERRAFORM_DIR / "variables.tf").read_text(encoding="utf-8")
    assert re.search(r'"checkpoint_retention_days" \{[^}]*default\s*=\s*2557', variables)
    assert_private_and_kms_encrypted(tf, bucket)


def test_kms_keys_rotate_and_the_storage_key_is_usable_only_through_s3() -> None:
    tf = terraform.load()
    for key in tf["resource.aws_kms_key"].values():
        assert key["enable_key_rotation"] is True
        assert key["deletion_window_in_days"] >= 7
    statements = tf["data.aws_iam_policy_document"]["gateway"]["statement"]
    (storage,) = [s for s in statements if s["resources"] == ["${aws_kms_key.storage.arn}"]]
    (condition,) = storage["condition"]
    assert condition["variable"] == "kms:ViaService"
    assert condition["values"] == ["s3.${var.region}.amazonaws.com"]
    for statement in statements:
        assert "*" not in statement["resources"]
        assert not any("*" in action for action in statement["actions"])


def settings_of(tf: dict[str, dict[str, dict[str, Any]]], kind: str, bucket: str) -> dict[str, Any]:
    (found,) = [
        body
        for body in tf[f"resource.{kind}"].values()
        if terraform.reference(body["bucket"]) == bucket
    ]
    return found


def assert_private_and_kms_encrypted(tf: dict[str, dict[str, dict[str, Any]]], bucket: str) -> None:
    block = settings_of(tf, "aws_s3_bucket_public_access_block", bucket)
    for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert block[setting] is True, setting
    assert block["restrict_public_buckets"] is True
    encryption = settings_of(tf, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    ((default,),) = [rule["apply_server_side_encryption_by_default"] for rule in encryption["rule"]]
    assert default["sse_algorithm"] == "aws:kms"
    assert terraform.reference(default["kms_master_key_id"]).startswith("aws_kms_key.")


def explained_checks() -> set[str]:
    """The check ids in the first column of infra/README.md's checkov table."""
    rows = re.findall(r"^\| (`CKV[^|]+)\|", README.read_text(encoding="utf-8"), re.M)
    return {check for row in rows for check in re.findall(r"`(CKV2?_[A-Z0-9]+_\d+)`", row)}


def test_checkov_fails_only_the_checks_the_readme_explains() -> None:
    # --skip-download: no guidelines or policies fetched; the scan is local and bounded to infra/.
    scan = ["--directory", str(INFRA), "--skip-download", "--quiet", "--output", "json"]
    result = subprocess.run(
        [str(tool("checkov")), *scan, "--framework", *CHECKOV_FRAMEWORKS],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"terraform", "kubernetes", "dockerfile"}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["check_type"]
    failed = {
        (check["check_id"], check["resource"])
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    failed_ids = {check_id for check_id, _ in failed}
    unexplained = sorted(f for f in failed if f[0] not in explained_checks())
    assert not unexplained, (
        f"checkov fails these and infra/README.md does not say why: {unexplained}"
    )
    # An explanation for a check that passes now is stale: remove it.
    assert explained_checks() == failed_ids
