"""`POST /v1/batch/jobs` that creates a job: multipart upload, input URL, presign step 3.

(Presign step 1 is the same endpoint but creates nothing: `presign.py`.) Also keeps the
create-attempt log behind `/__sandbox__/jobs`, which is how tests prove that a lost response still
created a job and that a retried create was refused as a duplicate.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread
from aiohttp import web

from pipeline.api.models import (
    CreateFromUploadRequest,
    CreateFromUrlRequest,
    JobAcknowledgement,
    OutputConfig,
    Tracking,
    TranscriptionConfig,
)
from pipeline.sandbox.api_errors import ApiError, error_response, model_response
from pipeline.sandbox.api_part import ApiPart
from pipeline.sandbox.audio_sniff import MIME_TYPES, SNIFF_BYTES, AudioInfo, analyse, analyse_file
from pipeline.sandbox.fault_middleware import DECISION_KEY
from pipeline.sandbox.json_body import JSON_BODY_KEY
from pipeline.sandbox.multipart_form import TOO_LARGE, UploadForm, read_upload_form
from pipeline.sandbox.state import CreateAttempt, JobRecord
from pipeline.sandbox.timeutil import iso_z, round_ms
from pipeline.sandbox.url_input import InputFetcher
from pipeline.sandbox.validation import (
    check_input_url,
    check_job_id,
    check_model_code,
    input_key,
    job_config,
    parse_json_part,
    parse_model,
)

Source = Literal["upload", "url", "presign"]
JsonCreate = CreateFromUploadRequest | CreateFromUrlRequest


@dataclass(frozen=True)
class Order:
    """What one create asks for, however its audio comes: the job, its owner, model and settings."""

    job_id: str
    api_key_id: str
    model_code: str
    config: TranscriptionConfig
    tracking: Tracking | None
    output_config: OutputConfig | None
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, req: JsonCreate, job_id: str, api_key_id: str, model_code: str) -> Order:
        """A JSON create's order (presign step 3 or input URL), its job_id and model checked."""
        return cls(
            job_id,
            api_key_id,
            model_code,
            req.transcription_config,
            req.tracking,
            req.output_config,
            req.metadata,
        )


class JobCreator(ApiPart):
    @property
    def fetcher(self) -> InputFetcher:
        """The background downloads of mode B (made on first use; closed by the API server)."""
        if self._fetcher is None:
            self._fetcher = InputFetcher(self.store, self.state, self.config.max_upload_bytes, self.clock)
        return self._fetcher

    _fetcher: InputFetcher | None = None

    # --- entry point ---------------------------------------------------------------------------

    async def handle(self, request: web.Request, api_key_id: str) -> web.Response:
        if request.content_type == "multipart/form-data":
            return await self._attempt(request, "upload", None, self._upload(request, api_key_id))
        if request.content_type != "application/json":
            return error_response(400, "Content-Type must be application/json or multipart/form-data")
        body = request.get(JSON_BODY_KEY)
        if not isinstance(body, dict):
            return error_response(400, "Request body must be a JSON object")
        job_id = body.get("job_id") if isinstance(body.get("job_id"), str) else None
        if "s3_key" in body:
            return await self._attempt(request, "presign", job_id, self._from_upload(body, api_key_id))
        if "input_url" in body:
            return await self._attempt(request, "url", job_id, self._from_url(body, api_key_id))
        return await self._attempt(
            request, "unknown", job_id, _fail(400, "One of input_url, s3_key or mode=presign is required")
        )

    async def _attempt(
        self, request: web.Request, mode: str, job_id: str | None, work: Awaitable[JobRecord]
    ) -> web.Response:
        """Run one create and log the attempt, whatever its outcome."""
        try:
            job: JobRecord = await work
        except ApiError as exc:
            self.record_attempt(request, mode, exc.job_id or job_id, exc.status, created=False)
            return error_response(exc.status, exc.message)
        self.record_attempt(request, mode, job.job_id, 202, created=True)
        return model_response(JobAcknowledgement(job_id=job.job_id, status="QUEUED"), status=202)

    def record_attempt(
        self,
        request: web.Request,
        mode: str,
        job_id: str | None,
        status: int,
        created: bool,
        injected: str | None = None,
    ) -> None:
        decision = request.get(DECISION_KEY)
        lost = bool(decision is not None and decision.lose_response)
        self.state.attempts.append(
            CreateAttempt(
                seq=len(self.state.attempts) + 1,
                job_id=job_id,
                mode=mode,
                status=status,
                created=created,
                injected=injected or ("lost_response" if lost else None),
                response_lost=lost,
                at=iso_z(self.clock()),
            )
        )
        self.state.save()

    # --- presign step 3 ------------------------------------------------------------------------

    async def _from_upload(self, body: dict[str, Any], api_key_id: str) -> JobRecord:
        req = parse_model(CreateFromUploadRequest, body)
        model_code = check_model_code(req.model_code)
        presign = self.state.presigns.get(req.s3_key)
        if presign is None:
            raise ApiError(400, "s3_key was not issued by a presign request")
        job_id = check_job_id(req.job_id) if req.job_id is not None else presign.job_id
        if job_id != presign.job_id:
            raise ApiError(400, "job_id does not match the job_id the s3_key was presigned for")
        if job_id in self.state.jobs:
            raise ApiError(409, "Job already exists")
        info = await self.store.head(req.s3_key)
        if info is None:
            raise ApiError(400, "No uploaded object found at s3_key")
        if info.size == 0:
            raise ApiError(400, "Uploaded object is empty")
        if info.size > self.config.max_upload_bytes:
            raise ApiError(413, TOO_LARGE)
        head = await self.store.read(req.s3_key, SNIFF_BYTES)
        audio = await anyio.to_thread.run_sync(analyse, head, self.store.local_path(req.s3_key))
        if job_id in self.state.jobs:  # re-check: the awaits above let a twin request in
            raise ApiError(409, "Job already exists")
        order = Order.of(req, job_id, api_key_id, model_code)
        return self._add_job(order, "presign", audio, presign.filename, info.size, key=req.s3_key)

    # --- URL input -----------------------------------------------------------------------------

    async def _from_url(self, body: dict[str, Any], api_key_id: str) -> JobRecord:
        req = parse_model(CreateFromUrlRequest, body)
        url = check_input_url(req.input_url)
        model_code = check_model_code(req.model_code)
        job_id = check_job_id(req.job_id)
        if job_id in self.state.jobs:
            raise ApiError(409, "Job already exists")
        # The URL is downloaded in the background (url_input.py); until then the job is QUEUED.
        name = url.split("?", 1)[0].rsplit("/", 1)[-1]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else None
        audio = AudioInfo(decodable=True, format=ext, mime_type=MIME_TYPES.get(ext or ""))
        order = Order.of(req, job_id, api_key_id, model_code)
        job = self._add_job(order, "url", audio, name or None, None, url=url)
        self.fetcher.start(job)
        return job

    # --- multipart upload ----------------------------------------------------------------------

    async def _upload(self, request: web.Request, api_key_id: str) -> JobRecord:
        async with read_upload_form(request, self.config.max_upload_bytes) as form:
            try:
                return await self._create_from_parts(form, api_key_id)
            except ApiError as exc:
                exc.job_id = exc.job_id or form.fields.get("job_id")
                raise

    async def _create_from_parts(self, form: UploadForm, api_key_id: str) -> JobRecord:
        fields, upload = form.fields, form.file
        if upload is None:
            raise ApiError(400, "file is required")
        if "transcription_config" not in fields:
            raise ApiError(400, "transcription_config is required")
        config = parse_json_part("transcription_config", fields["transcription_config"], TranscriptionConfig)
        tracking = parse_json_part("tracking", fields.get("tracking"), Tracking)
        output_config = parse_json_part("output_config", fields.get("output_config"), OutputConfig)
        metadata = parse_json_part("metadata", fields.get("metadata"))
        model_code = check_model_code(fields.get("model_code"))
        job_id = check_job_id(fields.get("job_id"))
        path, filename, content_type, size = upload.path, upload.filename, upload.content_type, upload.size
        if size == 0:
            raise ApiError(400, "Uploaded file is empty")
        if job_id in self.state.jobs:
            raise ApiError(409, "Job already exists")
        audio = await anyio.to_thread.run_sync(analyse_file, path)
        key = input_key(job_id, filename)
        if job_id in self.state.jobs:
            raise ApiError(409, "Job already exists")
        await self.store.put_file(key, path, content_type)
        order = Order(job_id, api_key_id, model_code, config, tracking, output_config, metadata)
        return self._add_job(order, "upload", audio, filename, size, key=key)

    # --- shared --------------------------------------------------------------------------------

    def _add_job(
        self,
        order: Order,
        source: str,
        audio: AudioInfo,
        filename: str | None,
        size: int | None,
        key: str | None = None,
        url: str | None = None,
    ) -> JobRecord:
        ext = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else None
        fmt = audio.format or ext
        input_metadata: dict[str, Any] = {
            "source": source,
            "filename": filename,
            "size_bytes": size,
            "format": fmt,
            "mime_type": audio.mime_type or MIME_TYPES.get(fmt or ""),
            "duration_seconds": audio.duration_seconds,
        }
        job = JobRecord(
            seq=self.state.next_seq(),
            job_id=order.job_id,
            api_key_id=order.api_key_id,
            model_code=order.model_code,
            job_config=job_config(order.config, order.tracking, order.output_config),
            metadata=order.metadata,
            source=source,
            input_key=key,
            input_url=url,
            input_metadata={k: v for k, v in input_metadata.items() if v is not None},
            decodable=audio.decodable,
            duration_seconds=audio.duration_seconds,
            submitted_at=round_ms(self.clock()),
            fetch_pending=url is not None,
        )
        self.state.jobs[order.job_id] = job
        self.state.save()
        return job


async def _fail(status: int, message: str) -> JobRecord:
    raise ApiError(status, message)
