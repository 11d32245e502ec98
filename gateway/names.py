"""Identifiers weightgate accepts: organisations, models, revisions and file paths.

Each is checked where it enters (CLI, HTTP, a grant read by a client), so
nothing downstream has to wonder whether a name can escape a directory, a
bucket prefix or a URL.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from rapidfuzz import fuzz, process

from gateway.errors import InvalidInput

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")


def check_org_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidInput(
            f"organisation id {value!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    return value


def check_model_id(value: str) -> str:
    if not _MODEL_ID.fullmatch(value):
        raise InvalidInput(f"model id {value!r} must look like NAME or ORG/NAME")
    return value


def check_revision(value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidInput(f"revision {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def check_file_path(value: str) -> str:
    parts = PurePosixPath(value).parts
    if not parts or value.startswith("/") or not all(_PATH_PART.fullmatch(p) for p in parts):
        raise InvalidInput(f"file path {value!r} is not a safe relative path")
    return value


def is_printable(text: str) -> bool:
    """No control, format or line-separator characters: nothing that rewrites a terminal or log."""
    return all(unicodedata.category(ch)[0] != "C" and ch not in "\u2028\u2029" for ch in text)


def check_display_name(value: str, *, what: str, longest: int = 200) -> str:
    """A human-facing name (an organisation's, an alias): printable, trimmed, bounded."""
    clean = value.strip()
    if not clean or len(clean) > longest or not is_printable(clean):
        raise InvalidInput(f"{what} must be 1-{longest} printable characters")
    return clean


def check_subject(value: str) -> str:
    """A token subject as an admin names it (quotas): what identity accepts from a token."""
    if not 0 < len(value) <= 256 or not is_printable(value):
        raise InvalidInput("a subject must be 1-256 printable characters")
    return value


def did_you_mean(name: str, known: Iterable[str], *, limit: int = 3) -> str:
    """ "; did you mean X or Y?" for the known names close to a mistyped one, else ""."""
    close = process.extract(name, list(known), scorer=fuzz.ratio, limit=limit, score_cutoff=70)
    return f"; did you mean {' or '.join(c for c, _score, _index in close)}?" if close else ""
