"""Anchor faults: the checkpoint anchor store cannot be written while grants go on.

Grants need only their durable entries, so they carry on; what must not
happen is a checkpoint the anchor store lacks, or a gateway that looks ready
while nothing is being anchored.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.faults.support import LivenessWatch, site
from tests.scenarios.deployment import Replica, wait_until

DURING = 10


def _checkpoint_size(replica: Replica) -> int:
    response = httpx.get(f"{replica.url}/v1/audit/checkpoint", timeout=5)
    return int(response.text.split("\n")[1]) if response.status_code == 200 else -1


def test_unwritable_anchor_store_stops_publication_loudly_and_recovers(
    tmp_path: Path, postgres_url: str
) -> None:
    anchors = tmp_path / "anchors"
    with site(
        tmp_path / "site", postgres_url, {"WEIGHTGATE_CHECKPOINT_ANCHOR": f"file://{anchors}"}
    ) as made:
        replica = made.serve()
        with LivenessWatch(replica.url) as watch:
            first = made.grant(replica)
            assert first.status_code == 201
            wait_until(lambda: _checkpoint_size(replica) == made.tree_size())
            before = _checkpoint_size(replica)

            # The anchor directory becomes a file: nothing can be written there.
            for note in anchors.iterdir():
                note.unlink()
            anchors.rmdir()
            anchors.write_text("not a directory")
            granted = [made.grant(replica) for _ in range(DURING)]
            assert [r.status_code for r in granted] == [201] * DURING
            wait_until(lambda: httpx.get(f"{replica.url}/readyz").status_code == 503)
            said = httpx.get(f"{replica.url}/readyz").json()["detail"]
            assert "checkpoint publication is failing: anchor" in said
            metrics = httpx.get(f"{replica.url}/metrics").text
            assert 'weightgate_checkpoint_publish_failures_total{stage="anchor"}' in metrics
            assert _checkpoint_size(replica) == before  # nothing signed that is not anchored

            anchors.unlink()  # repaired: publication resumes without a restart
            wait_until(lambda: httpx.get(f"{replica.url}/readyz").status_code == 200)
            wait_until(lambda: _checkpoint_size(replica) == made.tree_size())
        watch.assert_answered_throughout(at_least=10)
        replica.stop()
        made.assert_log_holds_exactly([first.json()] + [g.json() for g in granted])
