"""What a grant will cover, known before it is asked for.

The catalog lists a revision's files with their sizes to any authenticated
caller, and the gateway picks a grant's files from that list with the
``--include``/``--exclude`` globs (``GrantService._select_files``). Applying
the same globs here tells the client exactly which files the grant will
name, so the disk can be judged first and a grant asked for only when it
will be used. The grant is then pinned to the listed revision and must name
exactly the listed files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gateway.client.gateway_api import GatewayClient, public_url
from gateway.client.grant_session import GrantedFile
from gateway.errors import IntegrityError, InvalidInput, NotFound
from gateway.names import check_file_path, check_model_id, check_revision, did_you_mean


@dataclass(frozen=True)
class ListedFile:
    path: str
    size: int
    ciphertext_size: int


@dataclass(frozen=True)
class Listing:
    model: str
    revision: str
    files: tuple[ListedFile, ...]


def selected(paths: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The paths a grant with these globs covers: the gateway's rule, case-sensitive on every OS."""
    if include:
        paths = [p for p in paths if any(fnmatchcase(p, glob) for glob in include)]
    return [p for p in paths if not any(fnmatchcase(p, glob) for glob in exclude)]


def list_revision(
    client: GatewayClient,
    model: str,
    revision: str | None,
    include: Sequence[str],
    exclude: Sequence[str],
) -> Listing:
    """The files a grant of ``model@revision`` (the latest when None) with these globs names."""
    check_model_id(model)
    if revision is None:
        revision = _latest(client, model)
    check_revision(revision)
    body = client.call("GET", f"/v1/models/{model}/revisions/{revision}/files")
    try:
        files = tuple(_listed(entry) for entry in body["files"])
        answered = (str(body["model"]), str(body["revision"]))
    except (InvalidInput, KeyError, TypeError, ValueError):
        where = public_url(client.base_url)
        raise IntegrityError(
            f"the file listing from {where} is not one this client reads"
        ) from None
    if answered != (model, revision):
        raise IntegrityError(f"asked for the files of {model}@{revision}, got {'@'.join(answered)}")
    wanted = set(selected([f.path for f in files], include, exclude))
    if not wanted:
        raise NotFound(f"no file of {model}@{revision} matches the include/exclude patterns")
    return Listing(model, revision, tuple(f for f in files if f.path in wanted))


def check_granted(listing: Listing, grant: dict[str, Any], files: Sequence[GrantedFile]) -> None:
    """Refuse a grant for other files than the ones the disk was judged against."""
    granted = sorted((f.path, f.size, f.ciphertext_size) for f in files)
    listed = sorted((f.path, f.size, f.ciphertext_size) for f in listing.files)
    same_revision = (grant.get("model"), grant.get("revision")) == (listing.model, listing.revision)
    if granted != listed or not same_revision:
        raise IntegrityError(
            f"the grant names other files than the listing of {listing.model}@{listing.revision}; "
            "nothing was downloaded"
        )


def _latest(client: GatewayClient, model: str) -> str:
    body = client.call("GET", "/v1/models")
    try:
        revisions = [m["revisions"] for m in body["models"] if m["id"] == model]
    except (KeyError, TypeError):
        where = public_url(client.base_url)
        raise IntegrityError(f"the catalog from {where} is not one this client reads") from None
    if not revisions:
        known = [str(m.get("id")) for m in body["models"] if isinstance(m, dict)]
        raise NotFound(f"no model {model!r}{did_you_mean(model, known)}")
    if not isinstance(revisions[0], list) or not revisions[0]:
        raise NotFound(f"{model} has no published revision")
    # The catalog lists revisions in the order they were published.
    return str(revisions[0][-1])


def _listed(entry: Any) -> ListedFile:
    size, ciphertext_size = entry["size"], entry["ciphertext_size"]
    if not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (size, ciphertext_size)
    ):
        raise ValueError("not a listed file")
    return ListedFile(check_file_path(str(entry["path"])), size, ciphertext_size)
