"""A faithful local SLNG Batch API plus a strict S3 bucket behind it, with fault injection.

Run it with ``async with Sandbox(SandboxConfig(...)).run() as sb`` (current event loop),
``with Sandbox(cfg).run_in_thread() as sb`` (own thread), or ``serve(cfg)`` (blocking, the CLI).
``sb.api_url``, ``sb.s3_url``, ``sb.api_key``, ``sb.s3_credentials`` (botocore presigning in
tests), ``sb.s3_store`` (``create_bucket``, ``info``, ``read_bytes``, ``write_bytes``, ``list``).
``sb.set_api_keys(*keys)`` revokes or restores keys at run time (an auth failure mid-run).

API: the five documented endpoints under ``/v1/batch/jobs`` and all four create shapes, the
documented status codes and ``{"error": ...}`` bodies, every JSON body built from
``pipeline.api.models``. Jobs move QUEUED → IN_PROGRESS → DECODING → DONE, one ``job_step_seconds``
per step, computed from timestamps when read (0 = terminal at first read). Audio whose magic bytes
match no known container ends FAILED ("The audio file could not be decoded."). Transcripts are
written to ``outputs/<job_id>/transcript.{json,txt,srt}`` the first time a DONE job is read.

S3: path-style ``http://host:port/<bucket>/<key>``, presigned SigV4 query auth only, minted and
verified by botocore. Refuses what AWS refuses: bad signature, expired URL, unsigned ``x-amz-*``
header, wrong Host, missing Content-Length (411), chunked body (501), bad/malformed Content-MD5,
truncated bodies (never stored). Check order (as LocalStack): framing, auth parameters, unsigned
headers, signature, expiry, then bucket (404 NoSuchBucket) and key.

Choices where the SLNG docs are silent (conservative, documented here on purpose):

- Unknown or missing bearer key → 403 ``API key id not found`` (the Batch spec, not the 401 of the
  platform pages). One organisation: every valid key sees every job.
- Creating a job whose ``job_id`` exists (any mode) → 409 ``{"error": "Job already exists"}``.
- Presign step 1 with the job_id of a presign never completed → allowed (new URL; same key for the
  same filename). With the job_id of an existing job → 409. Without job_id → ``job`` + 32 hex.
  ``s3_key`` = ``inputs/<job_id>/<basename of filename>``; ``model_code``/``metadata`` in step 1
  are ignored; an unsupported extension → 400. ``upload.headers`` = ``{"Content-Type": <requested
  content_type or application/octet-stream>}`` (signed into the URL).
- Step 3 → 400 when ``s3_key`` was never presigned, its object is missing or empty, or ``job_id``
  differs from the one it was presigned for (omitted ``job_id`` = the presigned one). 413 above 1 GB.
- Unknown body fields → 400 (the project's request models forbid them). Empty upload → 400.
- A malformed multipart body (no or wrong boundary, cut off, a part without a name, a duplicated or
  unknown field, an unknown charset or undecodable text) → 400 with the same ``{"error"}`` envelope.
- Mode B (``input_url``): https, or plain http to loopback only (the sandbox's choice, for tests),
  else 400. The create answers 202 at once; the URL is downloaded in the background (byte for byte
  as sent, at most ``max_upload_bytes``) while the job stays QUEUED, then the audio is sniffed as
  for uploads and kept as the job's input (``/files`` lists it). A 403/404/other status, an
  unreachable host, an empty or over-cap body or non-audio content ends the job FAILED with a
  one-line ``error_message`` that never repeats the URL.
- ``/files`` on a job that is not DONE (incl. FAILED, DELETED) → 400 ``{"error": "Job is not DONE"}``.
  Download URLs are presigned GETs valid 3600 s.
- DELETE of a DONE/FAILED job → 202 ``{"job_id", "status": "DELETED"}`` and sets ``deleted_at``;
  the job still answers GET (status DELETED); a second DELETE → 409; objects are kept.
- List: pages = ceil(total / page_size) (0 when empty); date bounds inclusive, compared to the
  millisecond; naive datetimes are UTC; ties sort by submission order. Timestamps carry ms.
- State is in memory unless ``data_dir`` is set: then ``<data_dir>/state.json`` and
  ``<data_dir>/s3/`` keep jobs, presigns, attempts and objects across restarts.
- External mode (``s3_endpoint`` set): no local S3 server; presigning, object checks and output
  writes go through botocore to that endpoint; ``/__sandbox__/objects`` lists only objects the API
  itself checked or wrote.

Read-back interface (no auth, never faulted), also as methods on the running ``Sandbox``:

- ``GET /__sandbox__/stats``: ``requests[op] = {total, by_status}`` where a status is a code, or
  ``reset`` / ``lost`` / ``error`` when no response reached the client; ``injected[kind]`` and
  ``injected_by_operation[op][kind]`` with kinds ``status_<code>``, ``rate_limited``, ``latency``,
  ``reset``, ``lost_response``, ``short_expiry``.
- ``GET /__sandbox__/jobs``: ``{jobs: [BatchJob...], attempts: [{seq, job_id, mode, status,
  created, injected, response_lost, at}]}`` (every create call that reached the sandbox).
- ``GET /__sandbox__/objects``: ``{objects: [{bucket, key, size, md5, content_type}]}``.
- ``GET /__sandbox__/faults`` / ``POST /__sandbox__/faults`` (JSON ``FaultPlan``): read / replace.

Operations for faults: ``presign``, ``create`` (any other POST), ``get``, ``list``, ``files``,
``delete`` on the API; ``put`` and ``download`` (GET/HEAD) on S3. See ``faults.py``.
"""

from pipeline.sandbox import extra  # first: a clear SandboxExtraMissing when botocore is absent
from pipeline.sandbox.config import S3Credentials, SandboxConfig
from pipeline.sandbox.faults import FaultPlan
from pipeline.sandbox.service import Sandbox, serve

SandboxExtraMissing = extra.SandboxExtraMissing

__all__ = ["FaultPlan", "S3Credentials", "Sandbox", "SandboxConfig", "SandboxExtraMissing", "serve"]
