"""The fetch record reads back exactly, and only for the selection it was made for."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.client.fetch_record import (
    RecordedFile,
    Selection,
    plain_record,
    read_record,
    write_record,
)

_NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,20}", fullmatch=True)
_FILES = st.lists(
    st.builds(
        RecordedFile,
        path=st.lists(_NAME, min_size=1, max_size=3).map("/".join),
        size=st.integers(min_value=0, max_value=1 << 50),
        sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    ),
    min_size=1,
    max_size=8,
)
_SELECTION = st.builds(
    Selection,
    model=st.just("acme/frontier-1"),
    revision=_NAME,
    include=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    exclude=st.lists(st.text(max_size=10), max_size=3).map(tuple),
)


@given(files=_FILES, selection=_SELECTION, other=_SELECTION)
def test_a_record_reads_back_only_for_its_own_selection(
    files: list[RecordedFile], selection: Selection, other: Selection
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        where = plain_record(Path(scratch), selection.model, selection.revision)
        write_record(where, selection, files)
        assert read_record(where, selection) == files
        if other != selection:
            assert read_record(where, other) is None


def test_a_damaged_or_foreign_record_is_ignored(tmp_path: Path) -> None:
    selection = Selection("acme/m", "r1", (), ())
    where = tmp_path / "r.json"
    for text in ("", "[]", "{", '{"version": 2}', '{"version": 1, "model": "acme/m"}'):
        where.write_text(text)
        assert read_record(where, selection) is None
    assert read_record(tmp_path / "absent.json", selection) is None


def test_records_of_different_models_never_share_a_file(tmp_path: Path) -> None:
    # "a--b/c" and "a/b--c" are one name in the Hugging Face spelling.
    assert plain_record(tmp_path, "a--b/c", "r") != plain_record(tmp_path, "a/b--c", "r")
    assert plain_record(tmp_path, "m", "r").is_relative_to(tmp_path / ".weightgate")
