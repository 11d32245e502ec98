"""The API's admin features from the command line, and list commands for people and programs."""

from __future__ import annotations

import json
import subprocess

import pytest

from gateway.bootstrap import Services
from gateway.cli.main import command
from gateway.cli.needs import NEEDS
from gateway.identity.principal import Role
from tests.cli.support import WEIGHTGATE, assert_one_line_error, environment, run
from tests.conftest import MODEL, mint, operator

LONG_NAME = "Rhein Artificial Intelligence Forschungs- und Entwicklungsgesellschaft " * 2


def _admin(services: Services, subject: str = "root") -> dict[str, str]:
    return environment(services, mint(services, subject=subject, roles=(Role.ADMIN,)))


@pytest.mark.usefixtures("gateway_url")
def test_orgs_update_changes_only_what_is_given_and_is_audited_as_the_admin(
    catalog_ready: Services,
) -> None:
    admin = _admin(catalog_ready)
    moved = run(admin, "orgs", "update", "panda-de", "--no-parent", "--alias", "Panda Berlin")
    assert moved.returncode == 0, moved.stderr
    assert "updated panda-de (panda-de), HQ DE, aliases Panda Berlin" in moved.stdout
    listed = json.loads(run(admin, "orgs", "list", "--format", "json").stdout)
    [panda] = [org for org in listed["orgs"] if org["id"] == "panda-de"]
    assert panda == {
        "id": "panda-de",
        "name": "panda-de",
        "hq": "DE",
        "parent_hq": None,
        "aliases": ["Panda Berlin"],
    }
    changes = run(admin, "audit", "query", "--event", "org.update", "--format", "jsonl")
    [entry] = [json.loads(line) for line in changes.stdout.splitlines()]
    assert entry["unmapped"]["weightgate"]["actor"]["subject"] == "root"


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize(
    ("args", "status", "text"),
    [
        (["orgs", "update", "panda-de"], 2, "nothing to change"),
        (["orgs", "update", "panda-de", "--hq", "germany"], 2, "did you mean DE (Germany)?"),
        (["orgs", "update", "panda-de", "--parent-hq", "CN", "--no-parent"], 2, "not both"),
        (["orgs", "update", "nobody", "--name", "N"], 4, "no organisation 'nobody'"),
        (["quotas", "set", "org", "rhein", "--grants-per-hour", "-1"], 2, "--bytes-per-day"),
        (
            ["quotas", "set", "org", "rhein", "--grants-per-hour", "lots", "--bytes-per-day", "1"],
            2,
            "whole number or 'unlimited'",
        ),
        (["grants", "revoke", "no-such-grant"], 4, "no such grant"),
        (["policy", "reload", "--pack", "no-such-pack"], 2, "no-such-pack"),
        (["policy", "reload", "--pack", "./packs/next.toml"], 2, "a pack name, not a path"),
        (
            [
                "exemptions",
                "propose",
                "--org",
                "deccan",
                "--kind",
                "license",
                "--reference",
                "D" * 300,
                "--countries",
                "IN",
                "--models",
                "*",
                "--until",
                "2027-01-01",
                "--reason",
                "r",
            ],
            2,
            "malformed: reference String should have at most 200 characters",
        ),
    ],
    ids=[
        "nothing",
        "country-name",
        "parent-both",
        "unknown-org",
        "quota-missing",
        "quota-word",
        "unknown-grant",
        "unknown-pack",
        "pack-path",
        "field-too-long",
    ],
)
def test_admin_mistakes_get_one_line(
    catalog_ready: Services, args: list[str], status: int, text: str
) -> None:
    assert_one_line_error(run(_admin(catalog_ready), *args), status, text)


@pytest.mark.usefixtures("gateway_url")
@pytest.mark.parametrize(
    "args",
    [
        ["orgs", "update", "rhein", "--name", "Mine now"],
        ["quotas", "set", "org", "rhein", "--grants-per-hour", "9", "--bytes-per-day", "9"],
        ["policy", "reload"],
        ["exemptions", "list"],
    ],
    ids=["orgs-update", "quotas-set", "policy-reload", "exemptions-list"],
)
def test_an_admin_command_without_the_admin_role_is_refused(
    catalog_ready: Services, args: list[str]
) -> None:
    assert_one_line_error(run(environment(catalog_ready, mint(catalog_ready)), *args), 3, "")


@pytest.mark.usefixtures("gateway_url")
def test_policy_reload_reports_the_pack_in_force_and_audits_who_switched(
    catalog_ready: Services,
) -> None:
    admin = _admin(catalog_ready)
    reloaded = run(admin, "policy", "reload", "--pack", "ai-diffusion-2025")
    assert reloaded.returncode == 0, reloaded.stderr
    in_force = catalog_ready.policy.current
    assert f"policy in force: ai-diffusion-2025 {in_force.version} (sha256 {in_force.sha256})" in (
        reloaded.stdout
    )


@pytest.mark.usefixtures("gateway_url")
def test_piped_tables_keep_whole_values_and_json_lists_every_field(
    catalog_ready: Services,
) -> None:
    catalog_ready.catalog.add_org(
        "lang", name=LONG_NAME.strip(), hq="DE", parent_hq=None, context=operator()
    )
    admin = _admin(catalog_ready, subject="alice")
    proposed = run(
        admin,
        *["exemptions", "propose", "--org", "deccan", "--kind", "license"],
        *["--reference", "D-123456", "--countries", "in", "--models", MODEL],
        *["--until", "2027-06-30", "--reason", "BIS license for the Pune lab"],
    )
    assert proposed.returncode == 0, proposed.stderr
    exemption_id = proposed.stdout.split()[0]
    # stdout is a pipe here and COLUMNS is unset: nothing may be cut to 80 columns.
    table = run(admin, "exemptions", "list")
    assert exemption_id in table.stdout and "…" not in table.stdout
    approved = run(_admin(catalog_ready, subject="bob"), "exemptions", "approve", exemption_id)
    assert approved.returncode == 0, approved.stderr
    orgs = run(admin, "orgs", "list")
    assert LONG_NAME.strip() in orgs.stdout and "…" not in orgs.stdout

    listed = json.loads(run(admin, "exemptions", "list", "--format", "json").stdout)
    [item] = listed["exemptions"]
    assert (item["id"], item["status"], item["countries"]) == (exemption_id, "approved", ["IN"])
    models = json.loads(run(admin, "models", "list", "--format", "json").stdout)
    assert [(m["id"], m["eccn"], m["revisions"]) for m in models["models"]] == [
        (MODEL, "4E091", ["r1"])
    ]


def test_policy_diff_as_json(services: Services) -> None:
    services.catalog.add_org(
        "angkor", name="Angkor AI", hq="KH", parent_hq=None, context=operator()
    )
    result = run(
        environment(services),
        *["policy", "diff", "ai-diffusion-2025", "ai-diffusion-2025"],
        *["--at", "2026-01-15", "--to", "2026-02-15", "--format", "json"],
    )
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert diff["from"]["on"] == "2026-01-15" and diff["to"]["on"] == "2026-02-15"
    assert {"country": "KH", "name": "Cambodia", "tier_before": 3, "tier_after": 2} in diff[
        "countries"
    ]
    assert diff["cases"] == [
        {
            "case": "org angkor (Angkor AI)",
            "before": {"effect": "deny", "tier": 3},
            "after": {"effect": "deny", "tier": 2},
        }
    ]
    assert diff["exemptions"] == []


def test_version_and_shell_completion(services: Services) -> None:
    env = environment(services)
    shown = run(env, "--version")
    assert shown.returncode == 0 and shown.stdout.startswith("weightgate ")
    completion = subprocess.run(
        [WEIGHTGATE],
        env={**env, "_WEIGHTGATE_COMPLETE": "complete_bash", "COMP_WORDS": "weightgate exem"}
        | {"COMP_CWORD": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completion.stdout.split() == ["exemptions"], completion.stderr


def _leaves(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    children = getattr(node, "commands", None)
    if children is None:
        return [(path, node)]
    return [leaf for name, child in children.items() for leaf in _leaves(child, (*path, name))]


def test_every_command_says_what_it_needs_and_the_list_has_no_stale_entry() -> None:
    leaves = {" ".join(path): node for path, node in _leaves(command())}
    assert set(NEEDS) == set(leaves)
    assert all(str(getattr(node, "epilog", "")).startswith("Needs: ") for node in leaves.values())


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["exemptions", "approve"], "admin role, not the proposer's"),
        (["fetch"], "WEIGHTGATE_TOKEN (any authenticated caller)"),
        (["orgs", "add"], "the gateway's host, no token"),
    ],
)
def test_help_names_the_role_and_environment(
    services: Services, args: list[str], needs: str
) -> None:
    shown = run(environment(services) | {"COLUMNS": "400"}, *args, "--help")
    assert shown.returncode == 0 and needs in " ".join(shown.stdout.split())
