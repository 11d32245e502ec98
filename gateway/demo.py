"""``weightgate demo``: the whole story on embedded defaults, checked as it goes.

It exits 0 only if every step behaved as the story says, so it doubles as a
smoke test of a fresh install.
"""

from __future__ import annotations

import filecmp
import json
import os
import struct
import tempfile
import threading
import uuid
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.audit.events import RequestContext
from gateway.audit.verify import verify_log
from gateway.bootstrap import Services, build_services
from gateway.client.fetch import fetch
from gateway.client.gateway_api import GatewayClient
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import PolicyDenied
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from gateway.policy.pack import Eccn

MODEL = "frontier-labs/atlas-1"
REVISION = "v1"
# Tokens printed for the console when the demo keeps serving: two admins, so
# the two-person rule on exemptions can be tried; a console session lasts as
# long as its token, at most a working day.
CONSOLE_ADMINS = ("ada", "grace")
CONSOLE_TOKEN_TTL = timedelta(hours=8)


def write_synthetic_model(directory: Path, *, shards: int = 2, shard_bytes: int = 3 << 20) -> None:
    """A small model in safetensors layout: an 8-byte header length, a JSON header, raw tensors."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(1, shards + 1):
        count = shard_bytes // 4
        header = json.dumps(
            {
                "__metadata__": {"format": "pt"},
                f"layers.{shard}.weight": {
                    "dtype": "F32",
                    "shape": [count],
                    "data_offsets": [0, count * 4],
                },
            }
        ).encode()
        with (directory / f"model-{shard:05d}-of-{shards:05d}.safetensors").open("wb") as out:
            out.write(struct.pack("<Q", len(header)) + header + os.urandom(count * 4))
    (directory / "config.json").write_text(json.dumps({"architectures": ["AtlasForCausalLM"]}))


class _Story:
    def __init__(self, console: Console, services: Services, base_url: str) -> None:
        self.console = console
        self.services = services
        self.base_url = base_url
        self.failures: list[str] = []

    def token(self, subject: str, org: str, country: str) -> str:
        return dev_issuer.mint(
            self.services.settings.keys_dir,
            self.services.clock,
            subject=subject,
            org=org,
            country=country,
            roles=[Role.ML],
            ttl=timedelta(minutes=10),
        )

    def check(self, ok: bool, what: str) -> None:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"  {mark} {what}", highlight=False)
        if not ok:
            self.failures.append(what)

    def expect_denied(self, title: str, subject: str, org: str, country: str, code: str) -> None:
        self.console.rule(title)
        client = GatewayClient(self.base_url, self.token(subject, org, country))
        try:
            fetch(client, MODEL, None, self.services.settings.home / "never")
            self.check(False, "request was denied")
        except PolicyDenied as denied:
            decision = denied.detail["decision"]
            self.check(True, f"denied: Tier {decision['tier']} under {decision['policy']}")
            for reason in decision["reasons"]:
                self.console.print(f"      {reason['code']}: {reason['message']}", highlight=False)
            codes = {reason["code"] for reason in decision["reasons"]}
            self.check(code in codes, f"reasons include {code}")
        finally:
            client.close()


def run_demo(console: Console, *, serve: bool = False) -> int:
    """The story; with ``serve``, then the gateway and its console until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="weightgate-demo-") as scratch:
        root = Path(scratch)
        port = free_port()
        # Only the temporary directory and the development issuer, whatever the
        # environment configures: the demo never touches a real gateway's state.
        settings = Settings(
            home=root / "home",
            keys_dir=root / "keys",
            url=f"http://127.0.0.1:{port}",
            database_url=None,
            storage=None,
            checkpoint_anchor=None,
            issuers_file=None,
            dev_issuer="auto",
        )
        console.print(
            Panel.fit("weightgate demo: one encrypted, audited download, two denials", style="bold")
        )
        console.rule("Operator: keys, organisations, model")
        for item in init_keys(settings.keys_dir, dev_issuer=True):
            console.print(f"  created {item}")
        services = build_services(settings)
        ops = RequestContext(request_id=uuid.uuid4().hex, client_address="demo")
        for org_id, name, hq in (
            ("rhein-ai", "Rhein AI GmbH", "DE"),
            ("deccan-ml", "Deccan ML Pvt Ltd", "IN"),
            ("panda-berlin", "Panda Labs Berlin GmbH", "CN"),
        ):
            org = services.catalog.add_org(org_id, name=name, hq=hq, parent_hq=None, context=ops)
            console.print(f"  registered {org.id}: {org.name}, headquarters {org.hq}")
        source = root / "atlas-1"
        write_synthetic_model(source)
        rows = services.catalog.publish(
            source,
            model_id=MODEL,
            revision=REVISION,
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=ops,
        )
        console.print(
            f"  published {MODEL}@{REVISION} (4E091): {len(rows)} files, encrypted with "
            "Cobblestone-256, data keys wrapped by the local KEK"
        )
        try:
            with serving(create_app(services), "127.0.0.1", port) as base_url:
                console.print(f"  gateway listening on {base_url}")
                story = _Story(console, services, base_url)
                _tier1_fetch(story, source, root / "downloads")
                story.expect_denied(
                    "Tier 2: a requester in India", "priya", "deccan-ml", "IN", "TIER_NOT_ALLOWED"
                )
                story.expect_denied(
                    "Tier 3 by headquarters: in Germany, HQ in China",
                    "wei",
                    "panda-berlin",
                    "DE",
                    "TIER3_BY_ORG_HQ",
                )
                _audit(story)
                if serve and not story.failures:
                    _passed(console)
                    _serve_console(story, base_url)
                    return 0
        finally:
            services.close()
        if story.failures:
            console.print(f"[bold red]demo FAILED[/]: {'; '.join(story.failures)}")
            return 1
        _passed(console)
        console.print(
            "To look around in the console, run [bold]weightgate demo --serve[/]: it keeps "
            "serving after the story and prints the console's URL and tokens to sign in with.",
            highlight=False,
        )
        return 0


def _passed(console: Console) -> None:
    console.print("[bold green]demo passed[/]: every step behaved as described")


def _serve_console(story: _Story, base_url: str) -> None:
    """Keep serving until Ctrl-C, with the console's URL and admin tokens to paste in."""
    console = story.console
    console.rule("Console")
    console.print(f"Console: {base_url}/console/", highlight=False, soft_wrap=True)
    console.print(
        f"Tokens from the development issuer, roles security and admin, valid "
        f"{CONSOLE_TOKEN_TTL.total_seconds() / 3600:.0f} hours; paste one into the sign-in "
        "form, and the other in a private window to approve what the first proposes:",
        highlight=False,
    )
    for subject in CONSOLE_ADMINS:
        token = dev_issuer.mint(
            story.services.settings.keys_dir,
            story.services.clock,
            subject=subject,
            org="rhein-ai",
            country="DE",
            roles=[Role.SECURITY, Role.ADMIN],
            ttl=CONSOLE_TOKEN_TTL,
        )
        # One line, never wrapped: it is meant to be copied whole.
        console.print(f"{subject}: {token}", highlight=False, markup=False, soft_wrap=True)
    console.print("Serving until Ctrl-C; everything is deleted when it stops.", highlight=False)
    try:
        # Ctrl-C interrupts the wait in the main thread; the server runs in its own.
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopped", highlight=False)


def _tier1_fetch(story: _Story, source: Path, out: Path) -> None:
    story.console.rule("Tier 1: a requester in Germany, organisation in Germany")
    client = GatewayClient(story.base_url, story.token("anna", "rhein-ai", "DE"))
    try:
        files = fetch(client, MODEL, None, out)
    finally:
        client.close()
    for item in files:
        story.console.print(f"  {item.path.name}: {item.size:,} bytes, sha256 {item.sha256[:16]}…")
    story.check(len(files) == 3, "three files granted and downloaded")
    same = all(filecmp.cmp(source / f.path.relative_to(out), f.path, shallow=False) for f in files)
    story.check(same, "decrypted files are byte-identical to the originals")
    leftovers = list(out.rglob("*.weightgate-part"))
    story.check(not leftovers, "no partial files left behind")


def _audit(story: _Story) -> None:
    story.console.rule("Security: the audit log")
    audit = story.services.audit
    table = Table("#", "event", "who", "decision", "reasons")
    table.columns[1].no_wrap = True
    events = []
    for row in audit.query(limit=100):
        data = row.as_dict()
        events.append(data["event"])
        decision = data.get("decision", {})
        actor = data["actor"]
        who = f"{actor.get('subject')} ({actor['org']})" if actor.get("org") else actor["subject"]
        verdict = f"{decision['effect']}, Tier {decision['tier']}" if decision else ""
        table.add_row(
            str(row.index),
            data["event"],
            who,
            verdict,
            " ".join(r["code"] for r in decision.get("reasons", [])),
        )
    story.console.print(table)
    story.check(
        events.count("grant.allow") == 1 and events.count("grant.deny") == 2,
        "one grant and two denials are in the log",
    )
    story.check("download.redirect" in events, "each download redirect is in the log")
    # A serving gateway publishes once a second; the demo publishes now.
    published = story.services.publisher.publish()
    anchors = story.services.anchors
    story.check(
        published is not None,
        f"checkpoint signed at size {published.size if published else 0}, "
        f"anchored at {anchors.location}",
    )
    report = verify_log(
        audit.entries(),
        origin=audit.origin,
        public_key=story.services.keys.audit_signer.public_key(),
        checkpoint_notes=audit.checkpoint_notes(),
        anchored=anchors.checkpoints(),
        state=audit.tree_state(),
    )
    story.check(
        report.ok and report.unsigned == 0,
        f"audit verify: {report.size} entries, {report.checkpoints} signed "
        "checkpoints (database and anchor), all consistent",
    )
