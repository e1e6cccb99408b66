"""Everything the API remembers: jobs, pending presigns and the log of create attempts.

Held in memory; with `data_dir` it is also written (atomically, after every change) to
`<data_dir>/state.json`, so a standalone sandbox keeps its jobs across a restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field


class PresignRecord(BaseModel):
    job_id: str
    s3_key: str
    filename: str
    content_type: str
    created_at: float


class JobRecord(BaseModel):
    seq: int
    job_id: str
    api_key_id: str
    model_code: str
    job_config: dict[str, Any]
    metadata: dict[str, Any] | None = None
    source: Literal["upload", "url", "presign"]
    input_key: str | None = None
    input_url: str | None = None
    input_metadata: dict[str, Any] = Field(default_factory=dict)
    decodable: bool = True
    duration_seconds: float | None = None
    submitted_at: float
    deleted_at: float | None = None
    output_keys: dict[str, str] = Field(default_factory=dict)
    # Mode B: True while input_url is being downloaded; `ready_at` is when it arrived (or failed),
    # the moment the job's steps start from; `error` is the FAILED job's message, if not the default.
    fetch_pending: bool = False
    ready_at: float | None = None
    error: str | None = None


class CreateAttempt(BaseModel):
    """One create call that reached the sandbox, whatever became of it."""

    seq: int
    job_id: str | None
    mode: str
    status: int
    created: bool
    injected: str | None = None
    response_lost: bool = False
    at: str


class _StateFile(BaseModel):
    next_seq: int = 1
    jobs: list[JobRecord] = Field(default_factory=list)
    presigns: list[PresignRecord] = Field(default_factory=list)
    attempts: list[CreateAttempt] = Field(default_factory=list)


class SandboxState:
    def __init__(self, data_dir: Path | None) -> None:
        self._path = data_dir / "state.json" if data_dir is not None else None
        self.jobs: dict[str, JobRecord] = {}
        self.presigns: dict[str, PresignRecord] = {}  # by s3_key
        self.attempts: list[CreateAttempt] = []
        self._next_seq = 1
        if self._path is not None and self._path.exists():
            saved = _StateFile.model_validate_json(self._path.read_text())
            self._next_seq = saved.next_seq
            self.jobs = {j.job_id: j for j in saved.jobs}
            self.presigns = {p.s3_key: p for p in saved.presigns}
            self.attempts = saved.attempts

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def pending_presign_for(self, job_id: str) -> bool:
        return any(p.job_id == job_id for p in self.presigns.values())

    def save(self) -> None:
        if self._path is None:
            return
        data = _StateFile(
            next_seq=self._next_seq,
            jobs=list(self.jobs.values()),
            presigns=list(self.presigns.values()),
            attempts=self.attempts,
        )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data.model_dump(mode="json")))
        os.replace(tmp, self._path)
