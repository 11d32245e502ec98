"""Keystore faults: the KEK file disappears, turns into a directory, or is emptied, then comes back.

Running as root, ``chmod 000`` would not stop the gateway reading the file,
so the drill takes the file away instead, in each of the ways a botched
restore or a mistaken cleanup does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.faults.support import LivenessWatch, site


def test_kek_file_gone_or_unreadable_refuses_grants_and_recovers_once_restored(
    tmp_path: Path, postgres_url: str
) -> None:
    # Without the data-key cache, whose bound ("within its lifetime") is tested
    # in tests/crypto/test_keystore_cache.py: here a lost KEK must stop the very next grant.
    with site(tmp_path, postgres_url, {"WEIGHTGATE_DATA_KEY_CACHE_SECONDS": "0"}) as made:
        replica = made.serve()
        first = made.grant(replica)
        assert first.status_code == 201, first.text
        granted = [first.json()]
        kek = made.root / "keys" / "kek" / "v1.key"
        away = kek.with_name("v1.key.away")
        kek.replace(away)  # the real key waits here for every fault below

        def as_directory() -> Callable[[], None]:
            kek.mkdir()
            return kek.rmdir

        def emptied() -> Callable[[], None]:
            kek.write_bytes(b"")
            return kek.unlink

        def truncated() -> Callable[[], None]:
            kek.write_bytes(away.read_bytes()[:16])
            return kek.unlink

        def removed() -> Callable[[], None]:
            return lambda: None

        with LivenessWatch(replica.url) as watch:
            for fault in (removed, as_directory, emptied, truncated):
                undo = fault()
                refused = made.grant(replica)
                assert refused.status_code == 503, (fault.__name__, refused.text)
                assert refused.json()["code"] == "unavailable"
                assert "wrapped_key" not in refused.text
                ready = httpx.get(f"{replica.url}/readyz", timeout=10)
                assert ready.status_code == 503, fault.__name__
                undo()

            away.replace(kek)
            recovered = made.grant(replica)
            assert recovered.status_code == 201, recovered.text
            granted.append(recovered.json())
            assert httpx.get(f"{replica.url}/readyz", timeout=10).status_code == 200
        watch.assert_answered_throughout(at_least=3)
        assert replica.process.poll() is None  # recovered, not restarted
        made.assert_log_holds_exactly(granted)
