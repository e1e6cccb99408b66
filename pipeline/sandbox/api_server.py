"""The SLNG Batch API emulation: routing, bearer auth, and the read endpoints (get, list, delete,
files). Presign step 1 lives in `presign.py`, creating jobs in `create.py`, the read-back interface
in `readback.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from pipeline.api.models import JobAcknowledgement, JobFile, JobFiles, JobOutputFile, is_valid_job_id
from pipeline.sandbox.api_errors import ApiError, error_response, injected_api_error, model_response
from pipeline.sandbox.api_part import ApiPart
from pipeline.sandbox.config import DOWNLOAD_EXPIRES_IN
from pipeline.sandbox.create import JobCreator
from pipeline.sandbox.fault_middleware import make_fault_middleware
from pipeline.sandbox.json_body import JSON_BODY_KEY, is_presign, read_json_body
from pipeline.sandbox.lifecycle import render, status_at
from pipeline.sandbox.listing import parse_list_query, select
from pipeline.sandbox.outputs import OutputWriter
from pipeline.sandbox.presign import Presigner
from pipeline.sandbox.state import JobRecord

JOBS = "/v1/batch/jobs"


def api_key_id(key: str) -> str:
    """A stable id for a key that never reveals the key itself."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(eq=False)
class ApiServer(ApiPart):
    def __post_init__(self) -> None:
        self.accepted_keys = set(self.config.api_keys)  # mutable: tests revoke and restore keys
        parts = (self.config, self.state, self.store, self.injector, self.stats, self.clock)
        self.creator = JobCreator(*parts)
        self.presigner = Presigner(*parts)
        self.outputs = OutputWriter(self.store, self.state)

    def app(self, extra_routes: list[web.RouteDef]) -> web.Application:
        faults = make_fault_middleware(
            self.injector, self.stats, self._classify, injected_api_error, self._on_injected
        )
        app = web.Application(middlewares=[faults, _api_errors])
        app.router.add_routes(extra_routes)
        app.router.add_post(JOBS, self._create)
        app.router.add_get(JOBS, self._list)
        app.router.add_get(JOBS + "/{job_id}", self._get)
        app.router.add_delete(JOBS + "/{job_id}", self._delete)
        app.router.add_get(JOBS + "/{job_id}/files", self._files)
        app.on_startup.append(self._resume_downloads)
        app.on_cleanup.append(self._stop_downloads)
        return app

    async def _resume_downloads(self, _app: web.Application) -> None:
        self.creator.fetcher.resume()

    async def _stop_downloads(self, _app: web.Application) -> None:
        await self.creator.fetcher.close()

    # --- fault plumbing -----------------------------------------------------------------------

    async def _classify(self, request: web.Request) -> str | None:
        path = request.path.rstrip("/")
        if not path.startswith(JOBS):
            return None
        rest = path[len(JOBS) :]
        if request.method == "POST" and rest == "":
            if request.content_type == "application/json" and is_presign(await read_json_body(request)):
                return "presign"
            return "create"
        if request.method == "GET":
            if rest == "":
                return "list"
            return "files" if rest.endswith("/files") else "get"
        if request.method == "DELETE":
            return "delete"
        return None

    def _on_injected(self, request: web.Request, outcome: int | str, kind: str) -> None:
        if request.method != "POST" or isinstance(outcome, str):
            return
        body = request.get(JSON_BODY_KEY)
        if is_presign(body):
            return  # a presign, not a create
        job_id = body.get("job_id") if isinstance(body, dict) else None
        self.creator.record_attempt(
            request, "unknown", job_id if isinstance(job_id, str) else None, outcome, False, injected=kind
        )

    # --- helpers -------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.accepted_keys:
            raise ApiError(403, "API key id not found")
        return api_key_id(token.strip())

    def _job(self, request: web.Request) -> JobRecord:
        job_id = request.match_info["job_id"]
        if not is_valid_job_id(job_id):
            raise ApiError(400, "job_id must be alphanumeric")
        job = self.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "Job not found")
        return job

    def _status(self, job: JobRecord) -> str:
        return status_at(job, self.clock(), self.config.job_step_seconds)

    # --- handlers ------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        key_id = self._authenticate(request)
        body = request.get(JSON_BODY_KEY)  # set for JSON bodies only
        if is_presign(body):
            return await self.presigner.handle(body)
        return await self.creator.handle(request, key_id)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self._authenticate(request)
        job = self._job(request)
        if self._status(job) == "DONE":
            await self.outputs.ensure(job)
        return model_response(render(job, self.clock(), self.config.job_step_seconds))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self._authenticate(request)
        query = parse_list_query(request.query)
        now, step = self.clock(), self.config.job_step_seconds
        rows = [(j.submitted_at, j.seq, render(j, now, step)) for j in self.state.jobs.values()]
        return model_response(select(rows, query))

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        self._authenticate(request)
        job = self._job(request)
        if self._status(job) not in ("DONE", "FAILED"):
            raise ApiError(409, "Job must be DONE or FAILED to delete")
        job.deleted_at = self.clock()
        self.state.save()
        return model_response(JobAcknowledgement(job_id=job.job_id, status="DELETED"), status=202)

    async def _files(self, request: web.Request) -> web.StreamResponse:
        self._authenticate(request)
        job = self._job(request)
        if self._status(job) != "DONE":
            raise ApiError(400, "Job is not DONE")
        await self.outputs.ensure(job)
        expires, _ = self.injector.presign_expiry("files", DOWNLOAD_EXPIRES_IN)
        if expires != DOWNLOAD_EXPIRES_IN:
            self.stats.injected("files", "short_expiry")
        bucket = self.store.bucket
        inputs = []
        if job.input_key is not None:
            inputs.append(
                JobFile(
                    key=job.input_key,
                    s3_uri=f"s3://{bucket}/{job.input_key}",
                    download_url=self.stats.url_issued(self.store.presign_get(job.input_key, expires)),
                )
            )
        outputs = [
            JobOutputFile(
                format=fmt,
                key=key,
                s3_uri=f"s3://{bucket}/{key}",
                download_url=self.stats.url_issued(self.store.presign_get(key, expires)),
            )
            for fmt, key in sorted(
                job.output_keys.items(), key=lambda kv: ("json", "txt", "srt").index(kv[0])
            )
        ]
        return model_response(JobFiles(job_id=job.job_id, inputs=inputs, outputs=outputs))


@web.middleware
async def _api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ApiError into the error envelope, and aiohttp's own 404/405 into it too."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPNotFound:
        return error_response(404, "Not found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "Method not allowed")
