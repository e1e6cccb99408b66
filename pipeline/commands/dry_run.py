"""`submit --dry-run`: validate every row and file, ask the ledger what would happen to each, and
total up the bytes and audio time that would be sent; no remote call, nothing written.

Each file gets the verdict a real run would give it (`flow.admission`), from a batched glance at
the ledger: new, done (with new labels or not), changed since its job (same path, other bytes),
failed before (not sent again), unfinished (resumed), or resubmitted under --force. Durations come
from the files' own headers through mutagen, only for what would be sent; a file named by many rows
is read once (cached by path, size and mtime; the cache is bounded).
"""

from __future__ import annotations

import enum
import itertools
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache

import anyio
import mutagen

from pipeline.config.settings import Settings
from pipeline.errors import ExitCode
from pipeline.flow.admission import FAILED_BEFORE, AdmissionRules, Verdict
from pipeline.flow.inputs import open_sources
from pipeline.ledger import Glance, Ledger, ledger_missing, open_ledger
from pipeline.logs import log
from pipeline.observe.stats import human_bytes, plural
from pipeline.sources.identity import file_key
from pipeline.sources.rows import FileSpec, Rejection, Row

BATCH = 500  # rows looked up in the ledger at once


class Plan(enum.StrEnum):
    """What a run would do with a file, as `-v` lists it."""

    NEW = "new"
    CHANGED = "changed"  # its path is in the ledger with other bytes (size, mtime, version)
    UNFINISHED = "unfinished"  # an earlier run left it part way: resumed with the same job_id
    FORCED = "force"  # --force: done or failed, resubmitted as a new job
    DONE = "done"
    RELABELLED = "done, new labels"  # done; new tracking, metadata or output_config: not resent
    FAILED = "failed"  # failed before: not sent again (--force, or retry-failed for FAILED jobs)
    UNSETTLED = "unsettled"  # still being written (--settle): the next run takes it


SENT = (Plan.NEW, Plan.CHANGED, Plan.UNFINISHED, Plan.FORCED)


@lru_cache(maxsize=65536)
def audio_seconds(path: str, size: int, mtime_ns: int) -> float | None:
    """Duration from the audio header, or None when mutagen cannot tell (the file is still valid)."""
    try:
        info = mutagen.File(path)
    except Exception:  # mutagen raises many types for odd files; a dry run only reports
        return None
    length = getattr(getattr(info, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length > 0 else None


def plan_of(spec: FileSpec, known: Glance | None, path_known: bool, rules: AdmissionRules) -> Plan:
    """A file's plan from what the ledger knows of its identity (and of its path)."""
    now_ns = time.time_ns()
    if known is None:
        unsettled = rules.verdict(None, None, mtime_ns=spec.mtime_ns, now_ns=now_ns)
        if unsettled is Verdict.SKIP_UNSETTLED:
            return Plan.UNSETTLED
        return Plan.CHANGED if path_known else Plan.NEW
    verdict = rules.verdict(
        known.state, known.error_class, job_status=known.job_status, mtime_ns=spec.mtime_ns, now_ns=now_ns
    )
    if verdict is Verdict.SKIP_DONE:
        relabelled = known.settings_hash not in (None, spec.settings.settings_hash())
        return Plan.RELABELLED if relabelled else Plan.DONE
    if verdict in FAILED_BEFORE:
        return Plan.FAILED
    if verdict is Verdict.SKIP_UNSETTLED:
        return Plan.UNSETTLED
    return Plan.FORCED if verdict is Verdict.RENEW else Plan.UNFINISHED


def planned(
    rows: Iterable[Row], ledger: Ledger | None, rules: AdmissionRules
) -> Iterator[Rejection | tuple[FileSpec, Plan]]:
    """Each row: a rejection as it is, a file with its plan (the ledger asked a batch at a time)."""
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, BATCH)):
        specs = [row for row in batch if isinstance(row, FileSpec)]
        keys = {id(spec): file_key(spec) for spec in specs}
        known = ledger.glance(list(keys.values())) if ledger is not None and specs else {}
        unknown = [spec.path_text for spec in specs if keys[id(spec)] not in known]
        paths = {s.record.path for s in ledger.stories_at(unknown)} if ledger and unknown else set()
        for row in batch:
            if isinstance(row, FileSpec):
                yield row, plan_of(row, known.get(keys[id(row)]), row.path_text in paths, rules)
            else:
                yield row


def dry_run(sources: list[str], settings: Settings, *, list_files: bool = False) -> ExitCode:
    """Check every row and tell what a run would do; `list_files` (-v): one line per file."""
    if ledger_missing(settings.ledger):
        return _report(sources, settings, None, list_files)

    async def with_ledger() -> ExitCode:
        async with open_ledger(settings.ledger) as ledger:
            return await anyio.to_thread.run_sync(lambda: _report(sources, settings, ledger, list_files))

    return anyio.run(with_ledger)


def _report(sources: list[str], settings: Settings, ledger: Ledger | None, list_files: bool) -> ExitCode:
    rules = AdmissionRules(force=settings.force, settle_ns=int(settings.settle * 1e9))
    started = time.monotonic()
    plans: Counter[Plan] = Counter()
    rejected = total_bytes = unknown_duration = 0
    seconds = 0.0
    out = sys.stdout
    for item in planned(open_sources(sources, settings), ledger, rules):
        if isinstance(item, Rejection):
            rejected += 1
            log.warning("rejected: %s", item.message())
            continue
        spec, plan = item
        plans[plan] += 1
        if list_files:
            out.write(f"{plan.value:<17}{spec.path_text}\n")
        if plan not in SENT:
            continue
        total_bytes += spec.size
        duration = None if spec.is_remote else audio_seconds(spec.path_text, spec.size, spec.mtime_ns)
        if duration is None:
            unknown_duration += 1
        else:
            seconds += duration
    elapsed = time.monotonic() - started
    valid = sum(plans.values())
    sent = sum(plans[p] for p in SENT)
    counts = ", ".join(f"{plans[p]} {p.value}" for p in Plan if plans[p])
    out.write(f"dry run: {plural(valid, 'valid file')}, {plural(rejected, 'rejected row')}")
    out.write(f" ({counts})\n" if counts else "\n")
    out.write(
        f"would send {plural(sent, 'file')}, {human_bytes(total_bytes)}, {seconds / 3600:.2f} h of audio"
    )
    unknown = plural(unknown_duration, "file")
    out.write(f" ({unknown} of unknown duration)\n" if unknown_duration else "\n")
    out.write(f"checked in {elapsed:.2f} s; nothing was sent\n")
    if rejected:
        return ExitCode.REJECTED
    if sent == 0 and settings.error_on_nothing:
        return ExitCode.NOTHING_TO_DO
    return ExitCode.OK
