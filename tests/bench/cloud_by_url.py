"""cloud_by_url: audio already in S3 (LocalStack), submitted by URL, beside the upload path on the
same objects downloaded locally; and the listing rate of a large prefix.

In the suite (`python -m tests.bench --only cloud_by_url`: LocalStack and a sandbox process from
`Servers`, each run measured like the others), or on its own (LocalStack and a sandbox thread):

    python -m tests.bench.cloud_by_url --objects 10000 --listing 100000

Figures: files/s of `slng-bulk submit s3://…` and of `slng-bulk submit <folder>` (presign + PUT +
create) with the same objects, client CPU ms per file (the CLI child's user+sys), and objects/s of
the page-by-page listing alone (no ledger, no API).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import obstore

from tests.bench.common import Context, slng_submit
from tests.bench.results import Result
from tests.sandbox.helpers import wav_bytes
from tests.support.cloud_env import aws_credentials, bucket_at, s3_store
from tests.support.localstack import LocalStackS3, find_localstack_python, run_localstack


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one `slng-bulk` run, which must succeed."""
    cpu0, t0 = child_cpu_s(), time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    wall, cpu = time.monotonic() - t0, child_cpu_s() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"slng-bulk failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, cpu


async def fill(server: LocalStackS3, bucket: str, prefix: str, count: int, body: bytes) -> None:
    store = s3_store(server, bucket)
    gate = asyncio.Semaphore(64)

    async def put(i: int) -> None:
        async with gate:
            await obstore.put_async(store, f"{prefix}{i:07d}.wav", body)

    await asyncio.gather(*(put(i) for i in range(count)))


async def listing_rate(server: LocalStackS3, url: str) -> tuple[int, float]:
    bucket = bucket_at(server.endpoint, url)
    t0, seen = time.monotonic(), 0
    async for page in bucket.pages():
        seen += len(page)
    return seen, time.monotonic() - t0


def cloud_by_url(ctx: Context) -> None:
    """The suite's form: by URL vs upload on the same objects, then the listing rate."""
    name = "cloud_by_url"
    objects, listing = ctx.size(2000, 300), ctx.size(20_000, 2000)
    server = ctx.servers.localstack()
    bucket = server.create_bucket("bench-by-url")
    body = wav_bytes(0.05)
    asyncio.run(fill(server, bucket, "calls/", objects, body))
    aws = aws_credentials(server) | {"AWS_EC2_METADATA_DISABLED": "true"}
    local = ctx.work / "data" / "by-url-local"
    local.mkdir(parents=True, exist_ok=True)
    for i in range(objects):  # the same objects, as a folder on this host
        (local / f"{i:07d}.wav").write_bytes(body)
    sources = {
        "by URL (s3://, create with input_url)": f"s3://{bucket}/calls/",
        "upload (presign, PUT, create)": str(local),
    }
    for variant, source in sources.items():
        sb = ctx.servers.sandbox()
        extra = ["--s3-endpoint", server.endpoint, "--cloud-allow-http"] if source.startswith("s3://") else []
        try:
            run = slng_submit(
                ctx,
                [source],
                sb.api_url,
                sb.api_key,
                ctx.work / f"by-url-{len(extra)}.db",
                concurrency=32,
                extra=extra,
                env_extra=aws,
            )
        finally:
            ctx.servers.stop(sb)
        ctx.suite.add(
            Result(
                name,
                f"{variant}, {objects} objects",
                run.wall_s,
                objects / run.wall_s,
                "files/s",
                run.cpu_s * 1000 / objects,
                run.max_rss_mb,
            )
        )
    asyncio.run(fill(server, bucket, "big/", listing, b"x"))
    os.environ.update(aws)
    seen, took = asyncio.run(listing_rate(server, f"s3://{bucket}/big/"))
    ctx.suite.add(Result(name, f"listing {seen} objects (pages of 1000)", took, seen / took, "objects/s"))
    ctx.suite.figure(name, "client CPU ms/file by URL", ctx.suite.results[-3].cpu_ms_per_item or 0.0)
    ctx.servers.stop_localstack()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cloud_by_url")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--listing", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    python, why = find_localstack_python()
    if python is None:
        raise SystemExit(f"LocalStack not found: {why}")
    from pipeline.sandbox import Sandbox, SandboxConfig

    work = Path(tempfile.mkdtemp(prefix="slng-bench-cloud-"))
    body = wav_bytes(0.05)
    with (
        run_localstack(python) as server,
        Sandbox(SandboxConfig(job_step_seconds=0.01)).run_in_thread() as sb,
    ):
        bucket = server.create_bucket("bench")
        os.environ.update(aws_credentials(server))
        asyncio.run(fill(server, bucket, "calls/", args.objects, body))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLNG_")}
        env.update(
            {
                "SLNG_API_KEY": sb.api_key,
                "SLNG_BULK_API_URL": sb.api_url,
                "SLNG_BULK_PROGRESS": "none",
                "AWS_EC2_METADATA_DISABLED": "true",
                "SLNG_BULK_LOG_LEVEL": "warning",
            }
        )
        common = [
            "--concurrency",
            str(args.concurrency),
            "--max-create-rps",
            "100000",
            "--max-presign-rps",
            "100000",
        ]
        wall, cpu = timed_cli(
            [
                "submit",
                f"s3://{bucket}/calls/",
                "--ledger",
                str(work / "url.db"),
                "--s3-endpoint",
                server.endpoint,
                "--cloud-allow-http",
                *common,
            ],
            env,
            work,
        )
        print(
            f"by URL:  {args.objects} objects in {wall:.1f} s = {args.objects / wall:.0f} files/s, "
            f"client CPU {cpu * 1000 / args.objects:.2f} ms/file"
        )
        local = work / "local"
        local.mkdir()
        for i in range(args.objects):  # the same objects, as a folder on this host
            (local / f"{i:07d}.wav").write_bytes(body)
        wall, cpu = timed_cli(["submit", str(local), "--ledger", str(work / "upload.db"), *common], env, work)
        print(
            f"upload:  {args.objects} files in {wall:.1f} s = {args.objects / wall:.0f} files/s, "
            f"client CPU {cpu * 1000 / args.objects:.2f} ms/file"
        )
        asyncio.run(fill(server, bucket, "big/", args.listing, b"x"))
        seen, took = asyncio.run(listing_rate(server, f"s3://{bucket}/big/"))
        print(f"listing: {seen} objects in {took:.1f} s = {seen / took:.0f} objects/s (pages of 1000)")


if __name__ == "__main__":
    main()
