"""Proofs, receipts and witnesses end to end: checked without trusting the gateway."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.audit import checkpoint, proofs
from gateway.audit.events import build_event
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.receipt import parse_receipt, verify_receipt
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, write_secret
from gateway.crypto.keyring import init_keys
from gateway.identity.principal import Role
from tests.audit.support import replace_checkpoint
from tests.cli.test_cli import WEIGHTGATE
from tests.conftest import mint, operator


def _event(services: Services, n: int) -> dict[str, object]:
    return build_event("quota.set", time=services.clock.now(), context=operator(), quota={"n": n})


def _fill(services: Services, count: int) -> None:
    """``count`` appends, each followed by a publication round: a checkpoint at every size."""
    for n in range(count):
        services.audit.append([_event(services, n)])
        assert services.publisher.publish() is not None


def _public(services: Services) -> Ed25519PublicKey:
    return services.keys.audit_signer.public_key()


@pytest.fixture
def witnessed(settings: Settings, clock: FixedClock, tmp_path: Path) -> Services:
    """A gateway that accepts cosignatures from the security team's witness key."""
    init_keys(settings.keys_dir, dev_issuer=True)
    witness_key = tmp_path / "witness.pem"
    write_secret(witness_key, ed25519_to_pem(Ed25519PrivateKey.generate()))
    public = load_ed25519(witness_key).public_key().public_bytes_raw()
    witnesses = tmp_path / "witnesses.json"
    witnesses.write_text(
        json.dumps([{"name": "sec-witness", "public_key": base64.b64encode(public).decode()}])
    )
    services = build_services(settings.model_copy(update={"witnesses_file": witnesses}), clock)
    _fill(services, 7)
    return services


def test_inclusion_and_consistency_proofs_verify_against_signed_checkpoints(
    services: Services,
) -> None:
    _fill(services, 23)
    port = int(services.settings.url.rsplit(":", 1)[1])
    with serving(create_app(services), "127.0.0.1", port) as url:
        for index in (0, 7, 22):
            body = httpx.get(f"{url}/v1/audit/proofs/inclusion", params={"index": index}).json()
            signed = checkpoint.verify(body["checkpoint"], services.audit.origin, _public(services))
            [row] = services.audit.query(after=index - 1, limit=1)
            proofs.verify_inclusion(
                row.leaf_hash,
                index,
                signed.size,
                [base64.b64decode(h) for h in body["proof"]],
                signed.root,
            )
        old = checkpoint.verify(
            services.audit.checkpoints.note_at(10) or "", services.audit.origin, _public(services)
        )
        path = httpx.get(
            f"{url}/v1/audit/proofs/consistency", params={"from": 10, "to": 23}
        ).json()["proof"]
        new = checkpoint.verify(
            services.audit.latest_checkpoint() or "", services.audit.origin, _public(services)
        )
        proofs.verify_consistency(10, 23, old.root, new.root, [base64.b64decode(h) for h in path])
        receipt = httpx.get(f"{url}/v1/audit/receipts/5").text
        [row] = services.audit.query(after=4, limit=1)
        verify_receipt(
            parse_receipt(receipt), row.leaf_hash, services.audit.origin, _public(services)
        )
        assert (
            httpx.get(f"{url}/v1/audit/proofs/inclusion", params={"index": 99}).status_code == 422
        )


def test_witness_cosigns_only_a_consistent_log(witnessed: Services, tmp_path: Path) -> None:
    port = int(witnessed.settings.url.rsplit(":", 1)[1])
    log_key = base64.b64encode(_public(witnessed).public_bytes_raw()).decode()
    command = [
        WEIGHTGATE,
        "audit",
        "witness",
        "--key",
        str(tmp_path / "witness.pem"),
        "--name",
        "sec-witness",
        "--log-key",
        log_key,
        "--state",
        str(tmp_path / "seen.txt"),
    ]
    with serving(create_app(witnessed), "127.0.0.1", port) as url:
        env = {
            **os.environ,
            "WEIGHTGATE_URL": url,
            "WEIGHTGATE_TOKEN": mint(witnessed, roles=(Role.SECURITY,)),
        }
        first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert first.returncode == 0, first.stderr
        served = httpx.get(f"{url}/v1/audit/checkpoint").text
        witness_public = load_ed25519(tmp_path / "witness.pem").public_key()
        assert checkpoint.verify_cosignature(served, "sec-witness", witness_public) > 0
        _fill(witnessed, 5)
        second = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert second.returncode == 0 and "consistent with 7" in second.stdout

        # History rewritten: entry 3 changed, nodes and head recomputed, checkpoint re-signed.
        forked = _fork(witnessed)
        third = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert third.returncode != 0, "the witness must refuse a forked log"
        assert "Traceback" not in third.stderr
        assert forked not in (tmp_path / "seen.txt").read_text()


def _fork(services: Services) -> str:
    """Rebuild the log with one entry changed, as an operator with the signing key could."""
    with services.engine.begin() as connection:
        rows = connection.execute(text("SELECT idx, entry FROM audit_entries ORDER BY idx")).all()
        tree = CompactRange()
        connection.execute(text("DELETE FROM merkle_nodes"))
        for index, entry in rows:
            data = bytes(entry).replace(b'"n":3', b'"n":333') if index == 3 else bytes(entry)
            leaf = leaf_hash(data)
            for level, node, digest in tree.append(leaf):
                if level:
                    connection.execute(
                        text("INSERT INTO merkle_nodes VALUES (:l, :i, :h)"),
                        {"l": level, "i": node, "h": digest},
                    )
            connection.execute(
                text("UPDATE audit_entries SET entry=:e, leaf_hash=:h WHERE idx=:i"),
                {"e": data, "h": leaf, "i": index},
            )
        connection.execute(
            text("UPDATE tree_state SET root=:r, frontier=:f WHERE id=1"),
            {"r": tree.root(), "f": tree.to_bytes()},
        )
    # The operator holds the signing key, so the forged head is signed by hand
    # (the publisher itself would refuse it) and replaces the newest checkpoint row.
    note = checkpoint.sign(
        checkpoint.Checkpoint(services.audit.origin, tree.size, tree.root()),
        services.audit.origin,
        services.keys.audit_signer,
    )
    replace_checkpoint(services, tree.size, note, tree.root())
    return note


def test_verify_from_a_trusted_checkpoint_checks_only_what_is_new(
    services: Services, tmp_path: Path
) -> None:
    _fill(services, 10)
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(services.audit.latest_checkpoint() or "")
    _fill(services, 4)
    env = {
        **os.environ,
        "WEIGHTGATE_HOME": str(services.settings.home),
        "WEIGHTGATE_KEYS_DIR": str(services.settings.keys_dir),
    }
    ok = subprocess.run(
        [WEIGHTGATE, "audit", "verify", "--from", str(trusted)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "4 new entries after 10" in ok.stdout
    _fork(services)
    rewritten = subprocess.run(
        [WEIGHTGATE, "audit", "verify", "--from", str(trusted)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rewritten.returncode == 8
    assert "history before it was rewritten" in rewritten.stderr


def test_prove_prints_a_receipt_anyone_can_check(services: Services) -> None:
    _fill(services, 9)
    env = {
        **os.environ,
        "WEIGHTGATE_HOME": str(services.settings.home),
        "WEIGHTGATE_KEYS_DIR": str(services.settings.keys_dir),
    }
    result = subprocess.run(
        [WEIGHTGATE, "audit", "prove", "4"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("c2sp.org/tlog-proof@v1\n")
    [row] = services.audit.query(after=3, limit=1)
    verify_receipt(
        parse_receipt(result.stdout), row.leaf_hash, services.audit.origin, _public(services)
    )

    # A durable entry no checkpoint covers yet has no receipt to give: exit 7, not a
    # receipt against an unsigned head, and not "no such entry".
    [index] = services.audit.append([_event(services, 9)])
    waiting = subprocess.run(
        [WEIGHTGATE, "audit", "prove", str(index)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert waiting.returncode == 7, waiting.stderr
    assert waiting.stdout == ""
    assert "no signed checkpoint covers it yet" in waiting.stderr
