"""Text from tokens and admins is shown as written: markup in it neither restyles nor crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.bootstrap import Services
from tests.audit.support import decision_event
from tests.conftest import operator

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))
SPOOF = "[bold red]root[/bold red] [/x]"


def _cli(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env.update(
        WEIGHTGATE_HOME=str(services.settings.home),
        WEIGHTGATE_KEYS_DIR=str(services.settings.keys_dir),
        COLUMNS="250",
    )
    return subprocess.run(
        [WEIGHTGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_subject_written_as_markup_is_shown_literally_by_audit_query(
    services: Services,
) -> None:
    services.audit.append(
        [{**decision_event(services, 0), "actor": {"subject": SPOOF, "org": "rhein"}}]
    )
    shown = _cli(services, "audit", "query")
    assert shown.returncode == 0, shown.stderr
    assert SPOOF in shown.stdout


def test_an_organisation_named_as_markup_is_shown_literally_by_orgs_list(
    services: Services,
) -> None:
    services.catalog.add_org(
        "mallory", name=SPOOF, hq="DE", parent_hq=None, aliases=("[/]",), context=operator()
    )
    shown = _cli(services, "orgs", "list")
    assert shown.returncode == 0, shown.stderr
    assert SPOOF in shown.stdout and "[/]" in shown.stdout
