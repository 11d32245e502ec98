"""Stored screening results follow list reloads and organisation changes.

A grant reads the hits stored for its organisation. These tests are the ways
that could let a listed party through: a reload the stored result has not
caught up with, an alias added after registration, a stored result made with
another list, two replicas re-screening at once.
"""

from __future__ import annotations

import base64
import csv
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import update

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import InvalidInput
from gateway.policy.pack import Eccn
from gateway.policy.screening import MATCHER_VERSION
from gateway.state.tables import ScreeningResult
from tests.conftest import MODEL, REVISION, mint, operator

OLD_PARTIES = [("SYN-1", "Entity List (EL)", "Zagros Advanced Compute Company", "Zagros Compute")]
# The update lists a party under a name the org "rhein" registered as an alias.
NEW_PARTIES = [
    *OLD_PARTIES,
    ("SYN-2", "SDN", "Baltic Vector Systems Holding", "Rheinland Vector Labs; BVS Holding"),
]


def write_list(path: Path, parties: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["_id", "source", "name", "alt_names"])
        writer.writerows(parties)
    return path


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    return write_list(tmp_path / "csl.csv", OLD_PARTIES)


def _build(settings: Settings, clock: FixedClock, listed: Path, **extra: Any) -> Services:
    configured = settings.model_copy(update={"screening_list": listed, **extra})
    init_keys(configured.keys_dir, dev_issuer=True)
    return build_services(configured, clock)


@pytest.fixture
def gateway(
    settings: Settings, clock: FixedClock, listed: Path, model_dir: Path
) -> Iterator[tuple[str, Services]]:
    services = _build(settings, clock, listed)
    services.catalog.add_org(
        "rhein",
        name="Rhein AI GmbH",
        hq="DE",
        parent_hq=None,
        aliases=("Rheinland Vector Labs",),
        context=operator(),
    )
    services.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision=REVISION,
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    port = int(services.settings.url.rsplit(":", 1)[1])
    with serving(create_app(services), "127.0.0.1", port) as url:
        yield url, services
    services.close()


def _grant(url: str, services: Services) -> httpx.Response:
    key = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    return httpx.post(
        f"{url}/v1/grants",
        json={"model": MODEL, "recipient_key": key},
        headers={"Authorization": f"Bearer {mint(services)}"},
    )


def _screening_events(services: Services) -> list[dict[str, Any]]:
    return [e.as_dict() for e in services.audit.query(event="screening.changed")]


def _stored(services: Services, org_id: str) -> ScreeningResult:
    with services.sessions() as session:
        row = session.get(ScreeningResult, org_id)
        assert row is not None
        return row


def test_newly_listed_alias_denies_the_next_grant_after_the_reload_before_the_rescreen(
    gateway: tuple[str, Services], listed: Path
) -> None:
    url, services = gateway
    assert _grant(url, services).status_code == 201
    old_sha = _stored(services, "rhein").list_sha256

    write_list(listed, NEW_PARTIES)
    services.screening.reload(operator())
    # No background pass has run: the stored result is for the old list, and
    # the grant must not trust it.
    assert _stored(services, "rhein").list_sha256 == old_sha
    denied = _grant(url, services)
    assert denied.status_code == 403
    [reason] = [r for r in denied.json()["reasons"] if r["code"] == "DENIED_PARTY_MATCH"]
    assert "SYN-2" in reason["message"]
    assert "score 100" in reason["message"]
    [deny] = services.audit.query(event="grant.deny")
    assert [h["entry_id"] for h in deny.as_dict()["decision"]["screening"]] == ["SYN-2"]

    # The pass stores the new hit and audits it once; grants then read it.
    report = services.screening.rescreen(operator())
    assert report.changed == ["rhein"]
    row = _stored(services, "rhein")
    assert row.list_sha256 == services.screening.current.sha256  # type: ignore[union-attr]
    [event] = _screening_events(services)
    assert event["org"] == "rhein"
    assert [h["entry_id"] for h in event["new_hits"]] == ["SYN-2"]
    assert event["new_hits"][0]["score"] == 100
    assert event["cleared_hits"] == []
    assert services.audit.query(event="screening.load")
    assert _grant(url, services).status_code == 403

    # Delisted: the next pass clears the hit, audits that, and grants resume.
    write_list(listed, OLD_PARTIES)
    services.screening.reload(operator())
    assert services.screening.rescreen(operator()).changed == ["rhein"]
    cleared = _screening_events(services)[-1]
    assert [h["entry_id"] for h in cleared["cleared_hits"]] == ["SYN-2"]
    assert cleared["new_hits"] == []
    assert _grant(url, services).status_code == 201


def test_a_pass_with_nothing_changed_audits_nothing(
    gateway: tuple[str, Services], listed: Path
) -> None:
    _, services = gateway
    write_list(listed, [*OLD_PARTIES, ("SYN-9", "SDN", "Unrelated Maritime Trading", "")])
    services.screening.reload(operator())
    report = services.screening.rescreen(operator())
    assert (report.screened, report.changed) == (1, [])
    assert _screening_events(services) == []
    assert services.screening.rescreen(operator()).screened == 0


def test_alias_added_after_registration_denies_the_next_grant(
    gateway: tuple[str, Services],
) -> None:
    url, services = gateway
    assert _grant(url, services).status_code == 201
    services.catalog.update_org(
        "rhein",
        name=None,
        hq=None,
        parent_hq=None,
        clear_parent=False,
        aliases=("Rheinland Vector Labs", "Zagros Compute"),
        actor={"subject": "admin", "org": None},
        context=operator(),
    )
    # Stored in the transaction of the change, for the list in force.
    row = _stored(services, "rhein")
    assert "SYN-1" in row.hits
    assert row.list_sha256 == services.screening.current.sha256  # type: ignore[union-attr]
    assert _grant(url, services).status_code == 403


def test_a_stored_result_counts_only_for_the_list_it_was_made_with(
    gateway: tuple[str, Services],
) -> None:
    url, services = gateway
    current = services.screening.current
    assert current is not None
    forged_hit = (
        f'{{"matcher": {MATCHER_VERSION}, "hits": [{{"entry_id": "SYN-X", "source": "SDN",'
        ' "listed_name": "Rhein AI", "screened_name": "Rhein AI GmbH", "score": 99}]}'
    )
    with services.sessions.begin() as session:
        session.execute(update(ScreeningResult).values(hits=forged_hit, list_sha256="f" * 64))
    # A result for another list is not read: the organisation is screened now (clean).
    services.catalog._clear_recent()
    assert _grant(url, services).status_code == 201
    with services.sessions.begin() as session:
        session.execute(update(ScreeningResult).values(list_sha256=current.sha256))
    # The grant reads the stored result for the list in force, not the list.
    services.screening._stored.clear()
    denied = _grant(url, services)
    assert denied.status_code == 403
    assert any("SYN-X" in r["message"] for r in denied.json()["reasons"])


def test_results_made_under_the_old_matching_rule_are_rescreened_and_the_change_audited(
    gateway: tuple[str, Services], listed: Path
) -> None:
    url, services = gateway
    # "RH" is inside "Rhein": the rule before short names matched as whole
    # words scored that 90 and stored a hit, as a bare list of hits.
    write_list(listed, [*OLD_PARTIES, ("SYN-3", "EL", "Rheda Hydraulics", "RH")])
    services.screening.reload(operator())
    assert services.screening.rescreen(operator()).changed == []
    current = services.screening.current
    assert current is not None and current.screen(["Rhein AI GmbH"]) == []
    old_rule_hits = (
        '[{"entry_id": "SYN-3", "source": "EL", "listed_name": "RH",'
        ' "screened_name": "Rhein AI GmbH", "score": 90}]'
    )
    with services.sessions.begin() as session:
        session.execute(update(ScreeningResult).values(hits=old_rule_hits))
    services.screening._stored.clear()
    services.catalog._clear_recent()
    # Same list and threshold, older rule: the grant does not trust the stored hit.
    assert _grant(url, services).status_code == 201

    report = services.screening.rescreen(operator())
    assert (report.screened, report.changed) == (1, ["rhein"])
    [event] = _screening_events(services)
    assert event["new_hits"] == []
    assert [h["entry_id"] for h in event["cleared_hits"]] == ["SYN-3"]
    assert _stored(services, "rhein").hits.startswith(f'{{"matcher": {MATCHER_VERSION}, ')
    # Now current: the next pass has nothing to do.
    assert services.screening.rescreen(operator()).screened == 0


def test_a_list_that_cannot_be_read_on_reload_leaves_the_old_one_in_force(
    gateway: tuple[str, Services], listed: Path
) -> None:
    _, services = gateway
    before = services.screening.current
    listed.write_text("not,a,screening,list\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(InvalidInput):
        services.screening.reload(operator())
    assert services.screening.current is before
    assert services.audit.query(event="screening.load") == []


def test_the_background_pass_after_a_reload_stores_and_audits(
    gateway: tuple[str, Services], listed: Path
) -> None:
    _, services = gateway
    services.screening.start(operator())
    assert services.screening.settled(timeout=30)
    write_list(listed, NEW_PARTIES)
    services.screening.reload(operator())
    assert services.screening.settled(timeout=30)
    assert services.screening.failure is None
    assert "SYN-2" in _stored(services, "rhein").hits
    assert [e["org"] for e in _screening_events(services)] == ["rhein"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_two_replicas_rescreening_at_once_audit_each_change_once(
    settings: Settings, clock: FixedClock, listed: Path, database_url: str | None
) -> None:
    first = _build(settings, clock, listed, database_url=database_url)
    second = _build(settings, clock, listed, database_url=database_url)
    try:
        for number in range(250):
            # Every tenth organisation uses a name the update will list.
            aliases = ("Rheinland Vector Labs",) if number % 10 == 0 else ()
            first.catalog.add_org(
                f"org-{number:03d}",
                name=f"Org {number:03d} Research",
                hq="DE",
                parent_hq=None,
                aliases=aliases,
                context=operator(),
            )
        write_list(listed, NEW_PARTIES)
        first.screening.reload(operator())
        second.screening.reload(operator())
        reports = []
        go = threading.Barrier(2)

        def rescreen(services: Services) -> None:
            go.wait()
            reports.append(services.screening.rescreen(operator()))

        threads = [threading.Thread(target=rescreen, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        changed = sorted(org for report in reports for org in report.changed)
        assert changed == [f"org-{n:03d}" for n in range(0, 250, 10)]
        assert sum(report.screened for report in reports) >= 250
        events = sorted(e["org"] for e in _screening_events(first))
        assert events == changed
    finally:
        second.close()
        first.close()


def test_a_list_loaded_between_screening_and_storing_a_change_is_the_one_stored(
    gateway: tuple[str, Services], listed: Path
) -> None:
    _, services = gateway
    screened = services.screening.screen(["Rhein AI GmbH", "Rheinland Vector Labs"])
    assert screened is not None and screened.hits == ()
    write_list(listed, NEW_PARTIES)
    services.screening.reload(operator())
    # The background pass may already have passed this organisation: a result
    # stored now for the old list would leave it stale with nothing to catch it up.
    with services.sessions.begin() as session:
        services.screening.store(session, "rhein", screened)
    row = _stored(services, "rhein")
    assert row.list_sha256 == services.screening.current.sha256  # type: ignore[union-attr]
    assert "SYN-2" in row.hits


def test_a_stored_result_that_cannot_be_read_refuses_the_grant(
    gateway: tuple[str, Services],
) -> None:
    url, services = gateway
    with services.sessions.begin() as session:
        session.execute(update(ScreeningResult).values(hits='{"not": "a list of hits"'))
    refused = _grant(url, services)
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
