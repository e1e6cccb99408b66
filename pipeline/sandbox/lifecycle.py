"""Job progress, computed from timestamps on every read (no background task to race with).

QUEUED for one step, IN_PROGRESS for one, DECODING for one, then DONE (or FAILED for audio that
could not be decoded, or an input_url that could not be downloaded). A step of 0 makes a job
terminal as soon as it is read. A mode B job stays QUEUED while its input_url downloads; its steps
count from the moment the download ended.
"""

from __future__ import annotations

from typing import Final

from pipeline.api.models import BatchJob, JobError
from pipeline.sandbox.state import JobRecord
from pipeline.sandbox.timeutil import iso_z

ORGANISATION_ID: Final = "5b0c1f9e-2a34-4c1e-9a77-1d2e3f4a5b6c"
UNDECODABLE: Final = "The audio file could not be decoded."


def status_at(job: JobRecord, now: float, step: float) -> str:
    if job.deleted_at is not None:
        return "DELETED"
    if job.fetch_pending:
        return "QUEUED"
    elapsed = now - start_of(job)
    if step <= 0 or elapsed >= 3 * step:
        return "DONE" if job.decodable else "FAILED"
    if elapsed >= 2 * step:
        return "DECODING"
    if elapsed >= step:
        return "IN_PROGRESS"
    return "QUEUED"


def start_of(job: JobRecord) -> float:
    """When the job's steps start: its submission, or the end of its input_url download."""
    return job.ready_at if job.ready_at is not None else job.submitted_at


def render(job: JobRecord, now: float, step: float) -> BatchJob:
    """The API's view of a job at `now`."""
    status = status_at(job, now, step)
    started = start_of(job) + step if status != "QUEUED" else None
    terminal_at = start_of(job) + 3 * step
    completed = terminal_at if status in ("DONE", "FAILED", "DELETED") else None
    updated = max(t for t in (job.submitted_at, started, completed, job.deleted_at) if t is not None)
    output_metadata: dict[str, object] = {}
    if job.output_keys:
        output_metadata = {"formats": sorted(job.output_keys)}
    return BatchJob(
        job_id=job.job_id,
        status=status,
        api_key_id=job.api_key_id,
        organisation_id=ORGANISATION_ID,
        model_code=job.model_code,
        job_config=job.job_config,
        input_metadata=job.input_metadata,
        output_metadata=output_metadata,
        error_message=JobError(message=job.error or UNDECODABLE)
        if status == "FAILED" or (status == "DELETED" and not job.decodable)
        else None,
        submitted_at=iso_z(job.submitted_at),
        started_at=iso_z(started) if started is not None else None,
        completed_at=iso_z(completed) if completed is not None else None,
        deleted_at=iso_z(job.deleted_at) if job.deleted_at is not None else None,
        expired_at=None,
        updated_at=iso_z(updated),
    )
