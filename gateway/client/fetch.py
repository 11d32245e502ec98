"""``weightgate fetch``: parallel ranged downloads, decrypted chunk by chunk, verified, renamed.

Memory stays flat whatever the model size: work is cut into parts of a fixed
number of chunks, at most ``workers`` parts are in flight, and each part is
decrypted and written to its place in the output file before the next is read.
Parts already written by an interrupted run are not fetched again. A file only
appears under its real name once its SHA-256 matches the grant.

Before the grant is asked for, the revision's file listing says which files
it will cover (``listing``), and the disk is judged against that: when
everything is already there no grant is requested at all, and when the rest
cannot fit, or a file that differs would be replaced without ``force``, the
fetch stops having cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.client.destination import (
    PART_SUFFIX,
    Found,
    allocated,
    check_output_dir,
    differing,
    find,
    find_by_size,
    local_failure,
    nearest_existing,
    partial_of,
)
from gateway.client.fetch_record import RecordedFile, read_record, write_record
from gateway.client.gateway_api import GatewayClient, network_error, public_url
from gateway.client.grant_session import GrantedFile, GrantSession
from gateway.client.hf_cache import Layout, PlainLayout
from gateway.client.journal import JOURNAL_SUFFIX, PartJournal, open_partial
from gateway.client.listing import Listing, check_granted, list_revision
from gateway.crypto.fileformat import CHUNK_SIZE, SEALED_CHUNK_SIZE, chunk_count, sealed_span
from gateway.crypto.keyrelease import X25519, ClientKeyPair
from gateway.errors import InsufficientSpace, IntegrityError, InvalidInput, Unavailable

__all__ = ["PART_SUFFIX", "FetchOptions", "FetchedFile", "fetch"]

DEFAULT_PART_CHUNKS = 512  # 8 MiB ranged requests, as S3's performance guide suggests
STAGING_CHUNKS = 64  # 1 MiB of plaintext decrypted at a time
Progress = Callable[[int], None]


def free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


@dataclass(frozen=True)
class FetchOptions:
    workers: int = 8
    part_chunks: int = DEFAULT_PART_CHUNKS
    kem: str = X25519
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layout: Callable[[str, str], Layout] | None = None  # (model, revision) -> layout
    disk_free: Callable[[Path], int] = free_bytes
    force: bool = False  # replace files that exist and differ from the granted ones


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    size: int
    sha256: str
    resumed_bytes: int = 0  # verified by an earlier, interrupted run
    reused: bool = False  # already there with the granted SHA-256: nothing downloaded


@dataclass
class _Job:
    file: GrantedFile
    target: Path
    partial: Path
    journal: PartJournal
    fd: int = -1
    pending: list[int] = field(default_factory=list)


@dataclass
class _Plan:
    download: list[tuple[GrantedFile, Path]] = field(default_factory=list)
    present: list[GrantedFile] = field(default_factory=list)  # verified copy already in place
    copies: list[GrantedFile] = field(default_factory=list)  # same target as a file above


def fetch(
    client: GatewayClient,
    model: str,
    revision: str | None,
    out_dir: Path,
    options: FetchOptions | None = None,
    *,
    on_grant: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
) -> list[FetchedFile]:
    """Fetch what the grant names into ``out_dir``; files already there and verified are kept."""
    try:
        return _fetch(
            client,
            model,
            revision,
            out_dir,
            options or FetchOptions(),
            on_grant=on_grant,
            progress=progress,
        )
    except OSError as exc:
        # The disk, not the user's input or the network: say which file and why.
        raise local_failure(exc) from None


def _fetch(
    client: GatewayClient,
    model: str,
    revision: str | None,
    out_dir: Path,
    options: FetchOptions,
    *,
    on_grant: Callable[[dict[str, Any]], None] | None,
    progress: Progress | None,
) -> list[FetchedFile]:
    if options.workers < 1 or options.part_chunks < 1:
        raise InvalidInput("workers and part size must be positive")
    check_output_dir(out_dir)  # a mistake about the output costs no grant
    listing = list_revision(client, model, revision, options.include, options.exclude)
    layout = (options.layout or (lambda _m, _r: PlainLayout(out_dir)))(
        listing.model, listing.revision
    )
    record = layout.record(listing.model, listing.revision)
    recorded = {f.path: f for f in read_record(record, listing.model, listing.revision) or []}
    verified: dict[Path, str] = {}  # target -> SHA-256 hashed on disk during this run
    kept = _before_grant(
        listing, recorded, layout, out_dir=out_dir, options=options, verified=verified
    )
    if kept is not None:
        if progress is not None:
            progress(sum(f.size for f in kept))
        return kept
    keys = ClientKeyPair.generate(options.kem)
    # Pinned to the listed revision: a publish since cannot change what was judged.
    session = GrantSession(client, _grant_request(listing, options, keys), keys)
    grant = session.start()
    check_granted(listing, grant, session.files)
    if on_grant is not None:
        on_grant(grant)
    plan = _plan(session.files, layout, force=options.force, verified=verified)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Kept before the download, so an interrupted fetch is judged by hash next time.
    recorded.update({f.path: RecordedFile(f.path, f.size, f.sha256) for f in session.files})
    write_record(record, listing.model, listing.revision, sorted(recorded.values(), key=_path))
    jobs: list[_Job] = []
    try:
        jobs.extend(_prepare(file, target, options.part_chunks) for file, target in plan.download)
        resumed = {job.file.path: _resumed_bytes(job, options.part_chunks) for job in jobs}
        _check_space(jobs, resumed, out_dir, options)
        if progress is not None:
            progress(sum(resumed.values()) + sum(f.size for f in plan.present))
        _download(client.http, session, jobs, options, progress)
        done = {job.file.path: _finish(job, layout, resumed[job.file.path]) for job in jobs}
        for file in plan.present:
            done[file.path] = _keep(file.path, file.size, file.sha256, layout)
        in_place = {layout.target(f.path, f.sha256) for f in plan.present}
        for file in plan.copies:
            visible = layout.finish(file.path, file.sha256)
            reused = layout.target(file.path, file.sha256) in in_place
            done[file.path] = FetchedFile(visible, file.size, file.sha256, reused=reused)
        return [done[file.path] for file in session.files]
    finally:
        for job in jobs:
            job.journal.close()
            if job.fd >= 0:
                os.close(job.fd)


def _path(file: RecordedFile) -> str:
    return file.path


def _before_grant(
    listing: Listing,
    recorded: dict[str, RecordedFile],
    layout: Layout,
    *,
    out_dir: Path,
    options: FetchOptions,
    verified: dict[Path, str],
) -> list[FetchedFile] | None:
    """Before any grant: every listed file, if all are here and verify; else None, if there is room.

    A file an earlier grant recorded is hashed against the record; any other
    is judged by its size alone, which can show it missing or different but
    never complete. So this refuses only what is certain: what a size cannot
    settle (or a Hugging Face blob, named by a hash not yet known) is judged
    again once the grant names the hashes, and the hashes computed here are
    not redone.
    """
    complete: list[RecordedFile] = []
    found_differing: list[Path] = []
    counted: set[Path] = set()
    needed = 0
    for file in listing.files:
        record = recorded.get(file.path)
        sha256 = record.sha256 if record is not None and record.size == file.size else None
        target = layout.target(file.path, sha256) if sha256 else layout.place(file.path)
        if target is None:
            needed += file.size
            continue
        if sha256 is not None and verified.get(target) == sha256:
            complete.append(RecordedFile(file.path, file.size, sha256))
            continue
        found = find(target, file.size, sha256) if sha256 else find_by_size(target, file.size)
        if found is None or target in counted:
            continue
        counted.add(target)
        if found is Found.GRANTED_BYTES and sha256 is not None:
            verified[target] = sha256
            complete.append(RecordedFile(file.path, file.size, sha256))
            continue
        if found is Found.OTHER_BYTES and not (options.force or layout.names_by_content):
            found_differing.append(target)
        needed += max(0, file.size - allocated(partial_of(target)))
    if len(complete) == len(listing.files):
        return [_keep(f.path, f.size, f.sha256, layout) for f in complete]
    if found_differing:
        raise differing(found_differing)
    _require_space(needed, out_dir, options)
    return None


def _keep(path: str, size: int, sha256: str, layout: Layout) -> FetchedFile:
    """A file verified in place: tidy what an earlier run left beside it, and show it."""
    _discard_partial(layout.target(path, sha256))
    return FetchedFile(layout.finish(path, sha256), size, sha256, reused=True)


def _plan(
    files: list[GrantedFile], layout: Layout, *, force: bool, verified: dict[Path, str]
) -> _Plan:
    """Sort the granted files by what their targets already hold; nothing is written yet.

    A file that differs from the granted one may be the user's own edit: it is
    replaced only with ``force``, unless the layout names files by content,
    where different bytes under a SHA-256 name can only be damage.
    """
    plan = _Plan()
    planned: set[Path] = set()
    found_differing: list[Path] = []
    for file in files:
        target = layout.target(file.path, file.sha256)
        if target in planned:
            plan.copies.append(file)
            continue
        planned.add(target)
        if verified.get(target) == file.sha256:
            found = Found.GRANTED_BYTES
        else:
            found = find(target, file.size, file.sha256)
        if found is Found.GRANTED_BYTES:
            plan.present.append(file)
            continue
        if found is Found.OTHER_BYTES and not (force or layout.names_by_content):
            found_differing.append(target)
        plan.download.append((file, target))
    if found_differing:
        raise differing(found_differing)
    return plan


def _download(
    http: httpx.Client,
    session: GrantSession,
    jobs: list[_Job],
    options: FetchOptions,
    progress: Progress | None,
) -> None:
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        futures = [
            pool.submit(
                _fetch_part,
                http,
                session,
                job,
                part,
                count=options.part_chunks,
                progress=progress,
            )
            for job in jobs
            for part in job.pending
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Stop at the first failure (or Ctrl-C): parts not yet started
            # are dropped, and the journal keeps what was verified.
            for future in futures:
                future.cancel()
            raise


def _grant_request(listing: Listing, options: FetchOptions, keys: ClientKeyPair) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": listing.model,
        "revision": listing.revision,
        "recipient_key": keys.recipient_key(),
        "recipient_kem": keys.kem,
    }
    if options.include:
        request["include"] = list(options.include)
    if options.exclude:
        request["exclude"] = list(options.exclude)
    return request


def _prepare(file: GrantedFile, target: Path, part_chunks: int) -> _Job:
    partial = partial_of(target)
    identity = {
        "file_version": file.file_version,
        "sha256": file.sha256,
        "size": file.size,
        "part_chunks": part_chunks,
    }
    job = _Job(file, target, partial, PartJournal(partial, identity))
    job.fd, existed = open_partial(partial, file.size)
    done = job.journal.open(existed)
    job.pending = [p for p in range(_parts(file.size, part_chunks)) if p not in done]
    return job


def _discard_partial(target: Path) -> None:
    """Remove what an earlier run left beside a file now verified in place."""
    partial = partial_of(target)
    partial.with_name(partial.name + JOURNAL_SUFFIX).unlink(missing_ok=True)
    partial.unlink(missing_ok=True)


def _parts(size: int, part_chunks: int) -> int:
    return -(-chunk_count(size) // part_chunks)


def _resumed_bytes(job: _Job, part_chunks: int) -> int:
    done = set(range(_parts(job.file.size, part_chunks))) - set(job.pending)
    return sum(
        min(job.file.size, (p + 1) * part_chunks * CHUNK_SIZE) - p * part_chunks * CHUNK_SIZE
        for p in done
    )


def _check_space(
    jobs: list[_Job], resumed: dict[str, int], out_dir: Path, options: FetchOptions
) -> None:
    # The partial files are already at full size, but sparse: their unwritten
    # parts still need real blocks.
    _require_space(sum(job.file.size - resumed[job.file.path] for job in jobs), out_dir, options)


def _require_space(needed: int, directory: Path, options: FetchOptions) -> None:
    available = options.disk_free(nearest_existing(directory))
    if needed > available:
        raise InsufficientSpace(
            f"{needed:,} bytes still to write but only {available:,} free in {directory}; "
            "free some space or choose another --out"
        )


def _fetch_part(
    http: httpx.Client,
    session: GrantSession,
    job: _Job,
    part: int,
    *,
    count: int,
    progress: Progress | None,
) -> None:
    first = part * count
    count = min(count, chunk_count(job.file.size) - first)
    start, end = sealed_span(job.file.size, first, count)
    sealed = _buffer("sealed", end - start)
    _read_range(http, session, job.file, start, sealed)
    # Decrypt through a small staging buffer, so a worker holds one part of
    # ciphertext and 1 MiB of plaintext, not two whole parts.
    staging = _buffer("plain", STAGING_CHUNKS * CHUNK_SIZE)
    for batch in range(first, first + count, STAGING_CHUNKS):
        run = min(STAGING_CHUNKS, first + count - batch)
        low = (batch - first) * SEALED_CHUNK_SIZE
        high = sealed_span(job.file.size, batch, run)[1] - start
        written = job.file.decryptor.decrypt_into(batch, sealed[low:high], staging, count=run)
        os.pwrite(job.fd, staging[:written], batch * CHUNK_SIZE)
        if progress is not None:
            progress(written)
    job.journal.record(part)


_local = threading.local()


def _buffer(name: str, size: int) -> memoryview:
    """A per-thread buffer reused across parts: allocating 8 MiB per part per thread
    fragments the C heap until RSS is several times the data in flight."""
    buffer: bytearray | None = getattr(_local, name, None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(size)
        setattr(_local, name, buffer)
    return memoryview(buffer)[:size]


def _read_range(
    http: httpx.Client, session: GrantSession, file: GrantedFile, start: int, into: memoryview
) -> None:
    """Read ciphertext from ``start`` into ``into``, exactly filling it and never more."""
    end = start + len(into)
    url = session.storage_url(file.path)
    for attempt in range(2):
        try:
            with http.stream("GET", url, headers={"Range": f"bytes={start}-{end - 1}"}) as response:
                if response.status_code in (403, 410) and attempt == 0:
                    # The storage URL expired (they live at most 60 s): ask the
                    # gateway for a new one, which re-checks the grant.
                    url = session.storage_url(file.path, stale=url)
                    continue
                whole_file = start == 0 and end == file.ciphertext_size
                if response.status_code != 206 and not (response.status_code == 200 and whole_file):
                    raise Unavailable(
                        f"storage at {public_url(url)} answered {response.status_code} "
                        f"for a range of {file.path}"
                    )
                _read_exactly(response, into, file.path)
                return
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise network_error(f"cannot download {file.path} from", url, exc) from None
    raise Unavailable(f"storage at {public_url(url)} refused a freshly signed URL for {file.path}")


def _read_exactly(response: httpx.Response, into: memoryview, path: str) -> None:
    filled = 0
    for piece in response.iter_bytes():
        if filled + len(piece) > len(into):
            raise IntegrityError(f"{path}: storage sent more bytes than asked")
        into[filled : filled + len(piece)] = piece
        filled += len(piece)
    if filled != len(into):
        raise IntegrityError(f"{path}: storage sent fewer bytes than asked")


def _finish(job: _Job, layout: Layout, resumed: int) -> FetchedFile:
    digest = hashlib.sha256()
    position = 0
    while position < job.file.size:
        block = os.pread(job.fd, min(1 << 20, job.file.size - position), position)
        if not block:
            break
        digest.update(block)
        position += len(block)
    if digest.hexdigest() != job.file.sha256:
        # The journal vouched for parts that are not what they were: start
        # this file over next time rather than trust it, or leave it about.
        job.journal.remove()
        job.partial.unlink(missing_ok=True)
        raise IntegrityError(f"{job.file.path}: SHA-256 does not match the grant")
    os.fsync(job.fd)
    job.partial.replace(job.target)
    job.journal.remove()
    visible = layout.finish(job.file.path, job.file.sha256)
    return FetchedFile(visible, job.file.size, job.file.sha256, resumed)
