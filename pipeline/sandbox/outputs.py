"""Writing a finished job's transcripts into the bucket, once, the first time it is seen DONE."""

from __future__ import annotations

import asyncio

from pipeline.sandbox.objects import ObjectStore
from pipeline.sandbox.state import JobRecord, SandboxState
from pipeline.sandbox.transcripts import make_words, to_json, to_srt, to_txt

CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
}


def output_key(job_id: str, fmt: str) -> str:
    return f"outputs/{job_id}/transcript.{fmt}"


class OutputWriter:
    """Serialises output writing per job, so two concurrent reads do not write twice."""

    def __init__(self, store: ObjectStore, state: SandboxState) -> None:
        self._store = store
        self._state = state
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, job: JobRecord) -> None:
        if job.output_keys:
            return
        lock = self._locks.setdefault(job.job_id, asyncio.Lock())
        async with lock:
            if job.output_keys:
                return
            config = job.job_config.get("transcription_config", {})
            language = str(config.get("language") or "en")
            srt = (job.job_config.get("output_config") or {}).get("srt_overrides") or {}
            words = make_words(job.job_id, job.duration_seconds)
            bodies = {
                "json": to_json(job.job_id, words, job.duration_seconds, language),
                "txt": to_txt(words),
                "srt": to_srt(words, srt.get("max_line_length"), srt.get("max_lines")),
            }
            keys: dict[str, str] = {}
            for fmt, text in bodies.items():
                key = output_key(job.job_id, fmt)
                await self._store.put_bytes(key, text.encode(), CONTENT_TYPES[fmt])
                keys[fmt] = key
            job.output_keys = keys
            self._state.save()
        self._locks.pop(job.job_id, None)
