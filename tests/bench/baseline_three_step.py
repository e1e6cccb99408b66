"""`python -m tests.bench.baseline_three_step LIST --api-url URL --concurrency N`: the equal-work baseline.

The least a client can do and still push files through the presign flow: for each file, the same
three requests slng-bulk makes (presign step 1, a streamed PUT with Content-Length and the signed
headers, presign step 3) with `N` files in flight over one pooled aiohttp session, the file read
whole (the benchmark's files are small) and the ETag checked against its MD5, as slng-bulk does.
What it leaves out is what slng-bulk adds on top: the ledger (admission, states, the durable
create intent), row validation and identities, retries and rate control, progress and logs.
So `slng-bulk files/s ÷ this files/s` is the cost of those, on the same server, same concurrency.

LIST is a text file with one path per line. The key comes from SLNG_API_KEY. Prints `done N in S s`
on stdout (S from the first request to the last answer, start-up left out); exits 1 on the first
failed request (a baseline has no retries).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp

MODEL_CODE = "slng/speechmatics/batch:15.0.0"


async def one_file(
    session: aiohttp.ClientSession, api: str, headers: dict[str, str], path: Path, language: str
) -> None:
    job_id = uuid.uuid4().hex
    config = {"language": language}
    presign = {"mode": "presign", "filename": path.name, "job_id": job_id, "transcription_config": config}
    async with session.post(api, json=presign, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"presign {path}: HTTP {response.status}: {await response.text()}")
        answer = await response.json()
    upload = answer["upload"]
    data = path.read_bytes()  # noqa: ASYNC240 - 10 KiB from the page cache: cheaper than a thread hop
    put_headers = {**(upload.get("headers") or {}), "Content-Length": str(len(data))}
    async with session.put(
        upload["url"], data=data, headers=put_headers, skip_auto_headers=("Content-Type",)
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"PUT {path}: HTTP {response.status}: {await response.text()}")
        etag = response.headers.get("ETag", "").strip('"')
    if etag and etag != hashlib.md5(data, usedforsecurity=False).hexdigest():
        raise RuntimeError(f"PUT {path}: ETag {etag} is not the body's MD5")
    create = {
        "s3_key": upload["s3_key"],
        "job_id": job_id,
        "model_code": MODEL_CODE,
        "transcription_config": config,
    }
    async with session.post(api, json=create, headers=headers) as response:
        if response.status not in (200, 201, 202):
            raise RuntimeError(f"create {path}: HTTP {response.status}: {await response.text()}")
        await response.read()


async def run(
    paths: list[Path], api_url: str, key: str, concurrency: int, language: str
) -> tuple[int, float]:
    api = api_url.rstrip("/") + "/v1/batch/jobs"
    headers = {"Authorization": f"Bearer {key}"}
    todo: Iterator[Path] = iter(paths)
    done = 0
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=concurrency * 2 + 8, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            for path in todo:  # one shared iterator: each file is taken by exactly one worker
                await one_file(session, api, headers, path, language)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.baseline_three_step", description=__doc__)
    parser.add_argument("list", type=Path, help="a text file, one path per line")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--language", default="en")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    paths = [Path(line) for line in args.list.read_text(encoding="utf-8").splitlines() if line.strip()]
    main_coro = run(paths, args.api_url, os.environ["SLNG_API_KEY"], args.concurrency, args.language)
    if args.loop == "uvloop":
        import uvloop

        done, seconds = uvloop.run(main_coro)
    else:
        done, seconds = asyncio.run(main_coro)
    print(f"done {done} in {seconds:.4f} s")
    return 0 if done == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
