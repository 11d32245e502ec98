"""Tier changes grouped into moves, and the pack names a browser may choose from."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from gateway.policy.diff import NAMED_MOVES, tier_changes, tier_moves
from gateway.policy.pack import load_pack, pack_names

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "non-enforcement-2025-05.toml"


def test_dropping_tier_2_is_one_move_too_big_to_name_country_by_country() -> None:
    a, b = load_pack("ai-diffusion-2025"), load_pack(str(EXAMPLE))
    day = date(2026, 12, 1)
    changes = tier_changes(a, b, on_a=day, on_b=day)
    moves = tier_moves(changes)
    assert [(m.before, m.after) for m in moves] == [(2, 1)]
    assert len(moves[0].changes) == len(changes) > NAMED_MOVES and not moves[0].named
    assert [c.country for c in moves[0].changes] == sorted(c.country for c in changes)


def test_a_single_country_leaving_a_group_is_a_named_move() -> None:
    pack = load_pack("ai-diffusion-2025")
    # Cambodia left D:5 on 2026-02-03 (its membership is dated).
    moves = tier_moves(tier_changes(pack, pack, on_a=date(2026, 2, 2), on_b=date(2026, 2, 3)))
    assert [(m.before, m.after, [c.country for c in m.changes]) for m in moves] == [(3, 2, ["KH"])]
    assert moves[0].named


def test_pack_names_are_the_shipped_packs_and_the_configured_folders_toml_files(
    tmp_path: Path,
) -> None:
    assert pack_names() == ["ai-diffusion-2025"]
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    (tmp_path / "README.md").write_text("not a pack")
    (tmp_path / "Bad Name.toml").write_text("")  # load_pack could not find it by name
    assert pack_names(tmp_path) == ["ai-diffusion-2025", "non-enforcement-2025-05"]
    assert pack_names(tmp_path / "missing") == ["ai-diffusion-2025"]
