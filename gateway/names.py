"""Identifiers weightgate accepts: organisations, models, revisions and file paths.

Each is checked where it enters (CLI, HTTP, a grant read by a client), so
nothing downstream has to wonder whether a name can escape a directory, a
bucket prefix or a URL.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

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
