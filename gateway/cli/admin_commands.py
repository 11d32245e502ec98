"""Commands for the API's admin features: revoke a grant, set quotas, change an
organisation, switch the policy pack.

They go through the HTTP API with WEIGHTGATE_TOKEN, as the exemption commands
do, so each change is audited under the verified name of whoever made it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gateway.cli.common import api_call, literal, path_segment, stdout_console
from gateway.cli.operator_commands import orgs_app
from gateway.cli.user_commands import policy_app
from gateway.errors import InvalidInput
from gateway.policy.countries import country_code

grants_app = typer.Typer(help="Grants already issued.", no_args_is_help=True)
quotas_app = typer.Typer(
    help="Grants per hour and bytes per day, per organisation or subject.", no_args_is_help=True
)

UNLIMITED = "unlimited"
# The largest limits the gateway stores (a signed 32- and 64-bit column).
_MAX_GRANTS_PER_HOUR = 2**31 - 1
_MAX_BYTES_PER_DAY = 2**63 - 1


class QuotaScope(StrEnum):
    ORG = "org"
    SUBJECT = "subject"


@grants_app.command("revoke")
def grants_revoke(grant_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a grant (yours, or any as an admin): its file URLs answer 410 from now on."""
    grant = api_call("DELETE", f"/v1/grants/{path_segment(grant_id, what='a grant id')}")
    stdout_console().print(
        literal(
            f"grant {grant['id']}: {grant['state']} ({grant['model']}@{grant['revision']} "
            f"for {grant['subject']})"
        )
    )


def _limit(value: str, *, what: str, maximum: int) -> int | None:
    if value.strip().lower() == UNLIMITED:
        return None
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise InvalidInput(
            f"{what} must be a whole number or {UNLIMITED!r}, not {value!r}"
        ) from None
    if not 0 <= number <= maximum:
        raise InvalidInput(f"{what} must be between 0 and {maximum:,}")
    return number


@quotas_app.command("set")
def quotas_set(
    scope: Annotated[QuotaScope, typer.Argument(help="org or subject.")],
    key: Annotated[str, typer.Argument(help="The organisation id or the subject.")],
    grants_per_hour: Annotated[
        str, typer.Option(help=f"Grants per hour, or {UNLIMITED}.", metavar="N")
    ],
    bytes_per_day: Annotated[
        str, typer.Option(help=f"Bytes granted per day, or {UNLIMITED}.", metavar="N")
    ],
) -> None:
    """Set both limits for an organisation or a subject; beyond them grants are refused (429).

    Both are required: the gateway replaces the pair, so one left out would
    silently lift a limit set before.
    """
    body = {
        "grants_per_hour": _limit(
            grants_per_hour, what="--grants-per-hour", maximum=_MAX_GRANTS_PER_HOUR
        ),
        "bytes_per_day": _limit(bytes_per_day, what="--bytes-per-day", maximum=_MAX_BYTES_PER_DAY),
    }
    quota = api_call(
        "PUT", f"/v1/quotas/{scope.value}/{path_segment(key, what=scope.value)}", json=body
    )
    stdout_console().print(literal(_describe_quota(quota)))


def _describe_quota(quota: dict[str, Any]) -> str:
    grants = quota["grants_per_hour"]
    size = quota["bytes_per_day"]
    return (
        f"{quota['scope']} {quota['key']}: "
        f"{'no limit on grants' if grants is None else f'{grants:,} grants per hour'}, "
        f"{'no limit on bytes' if size is None else f'{size:,} bytes per day'}"
    )


def orgs_update(
    org_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option(help="New legal name.")] = None,
    hq: Annotated[
        str | None, typer.Option(help="New headquarters country, ISO 3166-1 alpha-2.")
    ] = None,
    parent_hq: Annotated[
        str | None, typer.Option(help="New ultimate parent's headquarters country.")
    ] = None,
    no_parent: Annotated[
        bool, typer.Option("--no-parent", help="It has no parent any more.")
    ] = False,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="Replace the aliases with these; repeat for several."),
    ] = None,
    no_aliases: Annotated[bool, typer.Option("--no-aliases", help="Remove every alias.")] = False,
) -> None:
    """Change an organisation through the API (admin): only what you give changes."""
    if parent_hq is not None and no_parent:
        raise InvalidInput("give --parent-hq or --no-parent, not both")
    if alias and no_aliases:
        raise InvalidInput("give --alias or --no-aliases, not both")
    change: dict[str, Any] = {}
    if name is not None:
        change["name"] = name
    if hq is not None:
        change["hq"] = country_code(hq, what="--hq")
    if parent_hq is not None:
        change["parent_hq"] = country_code(parent_hq, what="--parent-hq")
    if no_parent:
        change["parent_hq"] = None
    if alias or no_aliases:
        change["aliases"] = list(alias or ())
    if not change:
        raise InvalidInput(
            "nothing to change: give --name, --hq, --parent-hq, --no-parent, --alias "
            "or --no-aliases"
        )
    path = f"/v1/orgs/{path_segment(org_id, what='an organisation id')}"
    org = api_call("PATCH", path, json=change)
    parent = f", parent HQ {org['parent_hq']}" if org["parent_hq"] else ""
    aliases = f", aliases {', '.join(org['aliases'])}" if org["aliases"] else ""
    stdout_console().print(
        literal(f"updated {org['id']} ({org['name']}), HQ {org['hq']}{parent}{aliases}")
    )


def policy_reload(
    pack: Annotated[
        str | None,
        typer.Option(help="Switch to this pack (a shipped name or one in WEIGHTGATE_POLICY_DIR)."),
    ] = None,
) -> None:
    """Switch the pack every replica enforces, or re-read the one in force (admin); audited."""
    if pack is not None and (pack.endswith(".toml") or "/" in pack or "\\" in pack):
        # The gateway never reads a path sent over HTTP; say so rather than a bare 422.
        raise InvalidInput(
            f"--pack takes a pack name, not a path ({pack!r}): a shipped pack or one in the "
            "gateway's WEIGHTGATE_POLICY_DIR"
        )
    summary = api_call("POST", "/v1/policy/reload", json={"pack": pack} if pack else {})
    stdout_console().print(
        literal(
            f"policy in force: {summary['name']} {summary['version']} (sha256 {summary['sha256']})"
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(grants_app, name="grants")
    app.add_typer(quotas_app, name="quotas")
    orgs_app.command("update")(orgs_update)
    policy_app.command("reload")(policy_reload)
