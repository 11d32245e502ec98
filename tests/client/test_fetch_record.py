"""The fetch record reads back exactly, and only for the model and revision it was made for."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.client.fetch_record import (
    RecordedFile,
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
_MODEL = st.sampled_from(["acme/frontier-1", "acme/frontier-2", "frontier-1"])


@given(files=_FILES, model=_MODEL, revision=_NAME, other_model=_MODEL, other_revision=_NAME)
def test_a_record_reads_back_only_for_its_own_revision(
    files: list[RecordedFile], model: str, revision: str, other_model: str, other_revision: str
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        where = plain_record(Path(scratch), model, revision)
        write_record(where, model, revision, files)
        assert read_record(where, model, revision) == files
        if (other_model, other_revision) != (model, revision):
            assert read_record(where, other_model, other_revision) is None


def test_a_damaged_or_foreign_record_is_ignored(tmp_path: Path) -> None:
    where = tmp_path / "r.json"
    for text in ("", "[]", "{", '{"version": 2}', '{"version": 1, "model": "acme/m"}'):
        where.write_text(text)
        assert read_record(where, "acme/m", "r1") is None
    assert read_record(tmp_path / "absent.json", "acme/m", "r1") is None


def test_records_of_different_models_never_share_a_file(tmp_path: Path) -> None:
    # "a--b/c" and "a/b--c" are one name in the Hugging Face spelling.
    assert plain_record(tmp_path, "a--b/c", "r") != plain_record(tmp_path, "a/b--c", "r")
    assert plain_record(tmp_path, "m", "r").is_relative_to(tmp_path / ".weightgate")
