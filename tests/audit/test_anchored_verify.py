"""A database rewritten by its operator is caught by the checkpoints anchored in S3 Object Lock.

The attacker here owns the database and nothing else: they truncate or
rewrite entries, make the tree head agree, and delete the checkpoint rows
that would betray them, so the database alone verifies. The anchors are
COMPLIANCE-locked objects in a real moto S3 server, which they cannot delete.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from gateway.audit.verify import Report, verify_log
from gateway.bootstrap import Services, build_services
from gateway.cli.main import app
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.state.tables import SignedCheckpoint
from tests.audit.support import decision_event, delete_where, rewrite_entry, rewrite_head
from tests.storage.conftest import (
    REGION,
    MotoServer,
    isolate_aws_environment,
    running_moto,
    s3_client,
)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


@pytest.fixture
def anchored(
    settings: Settings,
    clock: FixedClock,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Services]:
    """A gateway anchoring to an Object Lock bucket; six entries under checkpoints 2, 4 and 6."""
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)
    bucket = f"wg-anchor-{uuid.uuid4().hex[:12]}"
    s3_client(moto.url).create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    configured = settings.model_copy(
        update={"checkpoint_anchor": f"s3://{bucket}/audit", "s3_endpoint_url": moto.url}
    )
    init_keys(configured.keys_dir)
    services = build_services(configured, clock)
    for number in range(6):
        services.audit.append([decision_event(services, number)])
        if number % 2:
            services.publisher.publish()
    yield services
    services.close()


def _verify(services: Services, *, with_anchors: bool) -> Report:
    return verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        anchored=services.anchors.checkpoints() if with_anchors else (),
        state=services.audit.tree_state(),
    )


def _forget_checkpoints(services: Services) -> None:
    with services.engine.begin() as connection:
        connection.execute(delete(SignedCheckpoint))


def test_intact_log_matches_every_anchor(anchored: Services) -> None:
    report = _verify(anchored, with_anchors=True)
    assert report.ok, report.problems
    assert report.anchored == 3 and report.checkpoints == 6


def test_log_truncated_below_an_anchor_is_caught(anchored: Services) -> None:
    delete_where(anchored, first=3)
    rewrite_head(anchored)
    _forget_checkpoints(anchored)
    assert _verify(anchored, with_anchors=False).ok  # the database agrees with itself
    report = _verify(anchored, with_anchors=True)
    kinds = {p.kind for p in report.problems}
    assert "truncated" in kinds, report.problems
    assert any("s3://" in p.message for p in report.problems)


def test_history_rewritten_below_an_anchor_is_caught(anchored: Services) -> None:
    rewrite_entry(anchored, 1, decision={"effect": "allow", "tier": 1, "reasons": []})
    rewrite_head(anchored)
    _forget_checkpoints(anchored)
    assert _verify(anchored, with_anchors=False).ok
    report = _verify(anchored, with_anchors=True)
    [first, *_] = report.problems
    assert first.kind == "modified" and first.index == 0
    assert "versionId=" in first.message


def test_cli_verify_checks_the_anchors_it_is_given(
    anchored: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    delete_where(anchored, first=3)
    rewrite_head(anchored)
    _forget_checkpoints(anchored)
    settings = anchored.settings
    for name, value in (
        ("WEIGHTGATE_HOME", str(settings.home)),
        ("WEIGHTGATE_KEYS_DIR", str(settings.keys_dir)),
        ("WEIGHTGATE_S3_ENDPOINT_URL", str(settings.s3_endpoint_url)),
    ):
        monkeypatch.setenv(name, value)
    anchors = settings.checkpoint_anchor or ""
    result = CliRunner().invoke(app, ["audit", "verify", "--anchors", anchors])
    assert result.exit_code != 0
    assert "truncated" in str(result.exception) or "truncated" in result.output
