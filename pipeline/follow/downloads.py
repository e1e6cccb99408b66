"""`fetch`: the transcripts of DONE jobs, into OUT/<path relative to the source root>.<format>.

Names never come from the server, and progress is recorded per output in the ledger, so a rerun
fetches only what is missing. Each file is written atomically (`pipeline.storage.download`).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from pipeline.api.client import SlngClient
from pipeline.api.models import JobFiles, OutputFormat
from pipeline.config.settings import wanted_formats
from pipeline.errors import AuthenticationError, ConfigError, ErrorClass, TransferError
from pipeline.follow.common import for_each
from pipeline.ledger import FileRecord, FileState, Ledger
from pipeline.logs import log
from pipeline.storage.download import download
from pipeline.transport.retry import RetryPolicy, retry_transient

OUTPUT_FORMATS: tuple[str, ...] = typing.get_args(OutputFormat)
FRESH_URL_ATTEMPTS = 3  # an expired download URL: ask /files again, at most this many times per output


def check_formats(formats: Iterable[str]) -> list[str]:
    """The wanted transcript formats, deduplicated (`wanted_formats`); an unknown one is a usage error."""
    try:
        return wanted_formats(formats)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class FetchReport:
    written: int = 0  # transcript files written
    skipped: int = 0  # jobs whose wanted outputs were all on disk already
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, format) the server lacks
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    fresh_urls: int = 0  # /files asked again because a download URL had expired
    deleted: int = 0


def transcript_path(out_dir: Path, relative_path: str, fmt: str, variant: str | None = None) -> Path:
    """Where a transcript goes: OUT/<path relative to the source root>.<format>, never outside OUT.

    `relative_path` comes from the ledger (a leading '/' is dropped); '..' anywhere, an empty path,
    an unknown format, or a folder inside OUT that is a symbolic link leading out of it is refused.
    `variant` (a job_id) is inserted before the format when two files share a relative path.
    """
    if fmt not in OUTPUT_FORMATS:
        raise TransferError(f"refusing unknown transcript format {fmt!r}", ErrorClass.PERMANENT)
    if variant is not None and not variant.isalnum():
        raise TransferError(f"refusing transcript name variant {variant!r}", ErrorClass.PERMANENT)
    parts = [p for p in relative_path.split("/") if p not in ("", ".")]  # ledger paths use '/'
    if not parts or ".." in parts or "\0" in relative_path:
        raise TransferError(f"refusing to write outside {out_dir}: {relative_path!r}", ErrorClass.PERMANENT)
    root = out_dir.resolve()
    name = f"{parts[-1]}.{variant}.{fmt}" if variant else f"{parts[-1]}.{fmt}"
    parent = root.joinpath(*parts[:-1]).resolve()  # follows links that already exist inside OUT
    if parent != root and root not in parent.parents:
        raise TransferError(
            f"refusing to write outside {out_dir}: {relative_path!r} leads to {parent}", ErrorClass.PERMANENT
        )
    return parent / name


def _paths(written: dict[str, str], formats: set[str]) -> list[str]:
    """The transcript files of these formats, in format order, for `Ledger.set_fetched`."""
    return [written[fmt] for fmt in sorted(formats) if fmt in written]


async def _delete_job(ledger: Ledger, client: SlngClient, policy: RetryPolicy, record: FileRecord) -> None:
    """DELETE the job; a 409/404 (e.g. our earlier DELETE landed but its answer was lost) is checked."""
    try:
        await retry_transient(policy, functools.partial(client.delete_job, record.job_id))
    except TransferError as exc:
        if exc.error_class not in (ErrorClass.CONFLICT, ErrorClass.NOT_FOUND):
            raise
        job = await retry_transient(policy, functools.partial(client.get_job, record.job_id))
        if job is not None and job.status != "DELETED":
            raise
    await ledger.set_server_deleted(record)


async def fetch_transcripts(
    ledger: Ledger,
    client: SlngClient,
    session: aiohttp.ClientSession,
    out_dir: Path,
    formats: Sequence[str],
    policy: RetryPolicy,
    delete_after: bool = False,
    concurrency: int = 8,
) -> FetchReport:
    """Download the wanted formats of every DONE job not yet on disk.

    Names never come from the server: a transcript goes to OUT/<relative path>.<format>, with the
    format chosen by us. Progress is recorded per output, so a rerun fetches only what is missing.
    """
    wanted = check_formats(formats)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    report = FetchReport()
    created = [r async for r in ledger.reads.records([FileState.CREATED.value])]
    owner: dict[str, int] = {}  # relative path -> the oldest file that has it: it gets the plain name
    for record in created:
        owner.setdefault(record.relative_path, record.id)

    async def fetch_one(record: FileRecord) -> None:
        variant = None if owner[record.relative_path] == record.id else record.job_id
        targets = {fmt: transcript_path(out_dir, record.relative_path, fmt, variant) for fmt in wanted}
        have = set(filter(None, (record.fetched_formats or "").split(",")))
        needed = [f for f in wanted if f not in have or not targets[f].exists()]
        have -= set(needed)
        # Where each format on disk is, as written: earlier fetches' (other --formats) kept.
        written = {Path(p).suffix[1:]: p for p in record.transcript_paths}
        written.update({fmt: str(targets[fmt]) for fmt in have & set(wanted)})
        absent: list[str] = []
        files: JobFiles | None = None
        for fmt in needed:
            for attempt in range(FRESH_URL_ATTEMPTS):
                if files is None:
                    files = await retry_transient(policy, functools.partial(client.job_files, record.job_id))
                output = files.output(fmt)
                if output is None:
                    absent.append(fmt)
                    report.missing.append((record.path, fmt))
                    log.warning("job %s (%s) has no %s output", record.job_id, record.path, fmt)
                    break
                try:
                    await retry_transient(
                        policy,
                        functools.partial(
                            download, session, output.download_url, targets[fmt], client.allow_insecure_http
                        ),
                    )
                except TransferError as exc:
                    if exc.error_class is ErrorClass.EXPIRED and attempt + 1 < FRESH_URL_ATTEMPTS:
                        log.info("download URL of %s expired; asking /files again", record.job_id)
                        report.fresh_urls += 1
                        files = None
                        continue
                    raise
                have.add(fmt)
                written[fmt] = str(targets[fmt])
                await ledger.set_fetched(record, ",".join(sorted(have)), _paths(written, have))
                report.written += 1
                break
        if not needed:
            report.skipped += 1
            if record.transcripts is None and have:  # fetched before the ledger kept the paths
                await ledger.set_fetched(record, ",".join(sorted(have)), _paths(written, have))
        if delete_after and all(f in have or f in absent for f in wanted):
            await _delete_job(ledger, client, policy, record)
            report.deleted += 1

    async def guarded(record: FileRecord) -> None:
        try:
            await fetch_one(record)
        except AuthenticationError:
            raise
        except TransferError as exc:
            report.errors.append((record.path, str(exc)))
            log.error("fetch failed: %s: %s", record.path, exc)

    await for_each([r for r in created if r.job_status == "DONE"], guarded, concurrency)
    return report
