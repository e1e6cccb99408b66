"""Presign step 1 (`POST /v1/batch/jobs` with `mode: "presign"`): a signed upload URL, no job.

The key is `inputs/<job_id>/<filename>`, so asking again for the same job_id and filename (a client
whose upload was interrupted) gets a fresh URL for the same key; a job_id that already names a job
is a 409, as a create with it would be.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.api.models import DEFAULT_CONTENT_TYPE, PresignRequest, PresignResponse, UploadTarget
from pipeline.sandbox.api_errors import ApiError, model_response
from pipeline.sandbox.api_part import ApiPart
from pipeline.sandbox.state import PresignRecord
from pipeline.sandbox.validation import check_job_id, filled_config, input_key, parse_model, safe_filename


class Presigner(ApiPart):
    async def handle(self, body: dict[str, Any]) -> web.Response:
        """The upload target for one file; an `ApiError` (4xx) for a request the API refuses."""
        # Not in the step-1 schema; the guide says the service may ignore them, so do we.
        cleaned = {k: v for k, v in body.items() if k not in ("model_code", "metadata")}
        req = parse_model(PresignRequest, cleaned)
        filename = safe_filename(req.filename)
        job_id = check_job_id(req.job_id)
        if job_id in self.state.jobs:
            raise ApiError(409, "Job already exists")
        key = input_key(job_id, filename)
        content_type = req.content_type or DEFAULT_CONTENT_TYPE
        expires, reported = self.injector.presign_expiry("presign", self.config.presign_expires_in)
        if expires != self.config.presign_expires_in:
            self.stats.injected("presign", "short_expiry")
        url = self.stats.url_issued(self.store.presign_put(key, content_type, expires))
        self.state.presigns[key] = PresignRecord(
            job_id=job_id, s3_key=key, filename=filename, content_type=content_type, created_at=self.clock()
        )
        self.state.save()
        bucket = self.store.bucket
        response = PresignResponse(
            job_id=job_id,
            transcription_config=filled_config(req.transcription_config),
            tracking=req.tracking.model_dump(exclude_none=True) if req.tracking else None,
            output_config=req.output_config.model_dump(exclude_none=True) if req.output_config else None,
            input_s3_uri=f"s3://{bucket}/{key}",
            output_s3_prefix=f"s3://{bucket}/outputs/{job_id}/",
            upload=UploadTarget(
                url=url,
                s3_key=key,
                s3_uri=f"s3://{bucket}/{key}",
                expires_in=reported,
                headers={"Content-Type": content_type},
            ),
        )
        return model_response(response, status=200, exclude_none=True)
