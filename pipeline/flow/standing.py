"""Failures of earlier runs that still stand: reported again by every run until resolved.

A file that failed for good (or whose job FAILED on the server) is not sent again by a rerun, but
it is not done either: the run counts it as failed, lists it in its summary and summary JSON, logs
it (`RunContext.tell`), and so exits 1, until the input is fixed, `--force` sends it again, or
`retry-failed` gives its job a new one. A cron job that runs every night keeps seeing it.
"""

from __future__ import annotations

from pipeline.flow.admission import Verdict
from pipeline.ledger import Glance
from pipeline.observe.stats import JOB_FAILED_CLASS, Failure, RunStats
from pipeline.sources.rows import FileSpec


class StandingFailures:
    """Reports each row of this run's sources whose file failed in an earlier run. Like the skips,
    it counts rows: no set of keys grows with the run (a file named twice is reported twice)."""

    def __init__(self, stats: RunStats) -> None:
        self.stats = stats

    def report(self, spec: FileSpec, verdict: Verdict, known: Glance) -> Failure:
        """Count and log the file as failed (`verdict` is one of `FAILED_BEFORE`; `known` is what
        the ledger says of it, its error being the job's server message for a FAILED job)."""
        if verdict is Verdict.SKIP_JOB_FAILED:
            error_class = JOB_FAILED_CLASS
            message = f"job FAILED on the server: {known.error or 'no message'}"
            self.stats.failed_job_ids.add(known.job_id)
        else:
            error_class = known.error_class or "unknown"
            message = known.error or "failed (no message recorded)"
        failure = Failure(
            spec.path_text, known.job_id, error_class, message, spec.source, spec.line, earlier=True
        )
        self.stats.add_failure(failure)  # logged with the run's other outcomes (RunContext.tell)
        return failure
