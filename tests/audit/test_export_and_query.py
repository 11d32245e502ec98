"""Reading the log: filters, cursor paging, OCSF and CSV exports that keep index and leaf hash."""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess

import httpx
import pytest

from gateway import __version__
from gateway.audit.export import CSV_COLUMNS, to_csv_row, to_ocsf
from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.cli.test_cli import WEIGHTGATE
from tests.conftest import MODEL, mint

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.fixture
def busy_log(gateway_url: str, catalog_ready: Services) -> Services:
    """One grant, two denials (Tier 2 and Tier 3), one rejected token, one redirect."""

    def ask(subject: str = "anna", org: str = "rhein", country: str = "DE") -> httpx.Response:
        token = mint(catalog_ready, subject=subject, org=org, country=country)
        return httpx.post(
            f"{gateway_url}/v1/grants",
            json={"model": MODEL, "recipient_key": RECIPIENT},
            headers={"Authorization": f"Bearer {token}"},
        )

    granted = ask()
    assert granted.status_code == 201
    assert httpx.get(granted.json()["files"][0]["url"]).status_code == 307
    assert ask(subject="priya", org="deccan", country="IN").status_code == 403
    assert ask(subject="wei", org="panda-de", country="DE").status_code == 403
    assert (
        httpx.get(f"{gateway_url}/v1/models", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    return catalog_ready


def test_filters_by_country_tier_decision_and_event(busy_log: Services) -> None:
    audit = busy_log.audit
    assert [r.as_dict()["actor"]["subject"] for r in audit.query(country="IN")] == ["priya"]
    assert [r.as_dict()["actor"]["subject"] for r in audit.query(tier=3)] == ["wei"]
    assert len(audit.query(decision="deny")) == 2
    assert [r.as_dict()["event"] for r in audit.query(event="auth.reject")] == ["auth.reject"]


def test_cursor_paging_walks_the_whole_log_once(gateway_url: str, busy_log: Services) -> None:
    headers = {"Authorization": f"Bearer {mint(busy_log, roles=(Role.SECURITY,))}"}
    seen: list[int] = []
    after = -1
    while True:
        page = httpx.get(
            f"{gateway_url}/v1/audit/entries", params={"after": after, "limit": 3}, headers=headers
        ).json()
        seen += [entry["index"] for entry in page["entries"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == list(range(busy_log.audit.tree_state()[0]))


def test_ocsf_records_map_each_event_and_keep_index_and_leaf_hash(busy_log: Services) -> None:
    expected = {
        "grant.allow": (600401, 1),
        "grant.deny": (600402, 2),
        "download.redirect": (600602, 1),
        "auth.reject": (300201, 2),
        "org.add": (600301, 1),
    }
    for row in busy_log.audit.query():
        record = to_ocsf(row, product_version=__version__)
        event = row.as_dict()["event"]
        if event in expected:
            assert (record["type_uid"], record["status_id"]) == expected[event], event
        assert record["metadata"]["sequence"] == row.index
        assert record["unmapped"]["leaf_hash"] == row.leaf_hash.hex()
        assert record["time"] > 1_700_000_000_000  # epoch milliseconds


def test_csv_export_has_a_row_per_entry_with_its_leaf_hash(busy_log: Services) -> None:
    rows = busy_log.audit.query()
    written = io.StringIO()
    writer = csv.writer(written)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(to_csv_row(row) for row in rows)
    parsed = list(csv.DictReader(io.StringIO(written.getvalue())))
    assert [int(r["index"]) for r in parsed] == [row.index for row in rows]
    assert [r["leaf_hash"] for r in parsed] == [row.leaf_hash.hex() for row in rows]
    [denied] = [r for r in parsed if r["subject"] == "wei"]
    assert denied["tier"] == "3" and "TIER3_BY_PARENT_HQ" in denied["reasons"]


def test_remote_query_returns_what_the_log_holds(gateway_url: str, busy_log: Services) -> None:
    env = {
        **os.environ,
        "WEIGHTGATE_URL": gateway_url,
        "WEIGHTGATE_TOKEN": mint(busy_log, roles=(Role.SECURITY,)),
    }
    result = subprocess.run(
        [WEIGHTGATE, "audit", "query", "--remote", "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    remote = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["leaf_hash"] for r in remote] == [r.leaf_hash.hex() for r in busy_log.audit.query()]
    refused = subprocess.run(
        [WEIGHTGATE, "audit", "query", "--remote"],
        env={**env, "WEIGHTGATE_TOKEN": mint(busy_log, roles=(Role.ML,))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3 and "security or admin role" in refused.stderr


@pytest.mark.parametrize("subject", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(
    gateway_url: str, catalog_ready: Services, subject: str
) -> None:
    token = mint(catalog_ready, subject=subject)
    assert httpx.get(
        f"{gateway_url}/v1/models", headers={"Authorization": f"Bearer {token}"}
    ).is_success
    httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, "recipient_key": RECIPIENT},
        headers={"Authorization": f"Bearer {token}"},
    )
    [row] = catalog_ready.audit.query(subject=subject)
    cells = to_csv_row(row)
    # A subject is a token's claim: whoever mints it must not get a formula
    # run on the reviewer's machine. The quote shows; the value stays legible.
    assert cells[3] == "'" + subject
    assert all(not str(cell).startswith(("=", "+", "-", "@")) for cell in cells)
