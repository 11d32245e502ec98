"""The active policy pack, switchable at run time without a restart.

A switch loads and validates the new pack completely, records it in the audit
log (name, version, SHA-256 and the pack it replaces), and only then makes it
current. A pack that fails to load, or a switch the log cannot record, leaves
the running pack in force.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.identity.principal import Principal
from gateway.policy.pack import PolicyPack, load_pack


def pack_summary(pack: PolicyPack) -> dict[str, str]:
    return {"name": pack.name, "version": pack.version, "sha256": pack.sha256}


class PolicySource:
    def __init__(
        self,
        initial: PolicyPack,
        *,
        spec: str,
        search_dir: Path | None,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._current = initial
        self._spec = spec
        self._search_dir = search_dir
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def current(self) -> PolicyPack:
        # One attribute read: a request decides under one whole pack, old or new.
        return self._current

    def record_in_force(self, context: RequestContext) -> None:
        """Audit which pack a starting gateway enforces."""
        event = build_event(
            "policy.load",
            time=self._clock.now(),
            context=context,
            actor={"subject": "operator", "org": None},
            pack=pack_summary(self._current),
            previous=None,
        )
        self._audit.append([event])

    def reload(
        self, context: RequestContext, *, name: str | None = None, by: Principal | None = None
    ) -> PolicyPack:
        """Switch to ``name`` (or re-read the configured pack) after auditing the switch."""
        with self._lock:
            spec = name or self._spec
            pack = load_pack(spec, search_dir=self._search_dir)
            previous = self._current
            event = build_event(
                "policy.load",
                time=self._clock.now(),
                context=context,
                principal=by,
                actor=None if by else {"subject": "operator", "org": None},
                pack=pack_summary(pack),
                previous=pack_summary(previous),
            )
            self._audit.append([event])
            self._current = pack
            if name is not None:
                self._spec = name
            return pack
