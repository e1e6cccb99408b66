"""One large file: slng-bulk beside `curl -T` and a raw-socket write of the same bytes to the same server.

The raw-socket client (`RAW_PUT`) sends the request head and then the file with `socket.sendfile`
(zero-copy, no user-space reads, no hashing): nothing can push bytes into that server faster, so
it is the physical limit of the server and the loopback on this machine. Two servers: the
sandbox's S3 (verifies the signature, MD5s the body and writes it to disk) and `lean_server.py`
(MD5s the body and drops it), the second showing the client's own ceiling. Every client runs
once per round, rounds interleaved; figures are medians.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Final

from pipeline.api.models import MAX_FILE_BYTES
from tests.bench import data
from tests.bench.common import Context, MiB, ServerCpu, ledger_stats, median, slng_submit, spread
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Result
from tests.bench.servers import RunningLean, RunningSandbox

RSS_LIMIT_MB: Final = 100.0

RAW_PUT = r"""
import socket, sys, urllib.parse
url, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = urllib.parse.urlsplit(url)
target = parts.path + ("?" + parts.query if parts.query else "")
sock = socket.create_connection((parts.hostname, parts.port))
sock.sendall((f"PUT {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/octet-stream\r\n"
              f"Content-Length: {size}\r\n\r\n").encode())
with open(path, "rb") as fh:
    sent = sock.sendfile(fh)
answer = b""
while b"\r\n\r\n" not in answer:
    chunk = sock.recv(65536)
    if not chunk:
        break
    answer += chunk
status = answer.split(b" ", 2)[1].decode() if answer else "none"
print(status, sent)
sys.exit(0 if status == "200" and sent == size else 1)
"""


def presign_sandbox_put(sb: RunningSandbox, key: str) -> str:
    from pipeline.sandbox.signing import make_s3_client

    client = make_s3_client(sb.s3_url, sb.config.s3_credentials)
    url: str = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": sb.config.bucket, "Key": key, "ContentType": "application/octet-stream"},
        ExpiresIn=3600,
    )
    return url


def presign_lean_put(lean: RunningLean, job_id: str, filename: str) -> str:
    body = json.dumps({"mode": "presign", "job_id": job_id, "filename": filename}).encode()
    request = urllib.request.Request(
        f"{lean.api_url}/v1/batch/jobs",
        data=body,
        headers={"Authorization": f"Bearer {lean.api_key}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as resp:
        return str(json.loads(resp.read())["upload"]["url"])


def curl_put(ctx: Context, path: Path, url: str) -> Measured:
    run = run_measured(
        [
            "curl",
            "-sS",
            "--fail",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-T",
            str(path),
            url,
        ],
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=1800,
    ).check()
    if run.stdout.strip() != "200":
        raise RuntimeError(f"curl PUT answered {run.stdout!r}")
    return run


def raw_put(ctx: Context, path: Path, url: str, size: int) -> Measured:
    env = clean_env({"HOME": str(ctx.home)})
    argv = [sys.executable, "-S", "-c", RAW_PUT, url, str(path), str(size)]
    return run_measured(argv, env=env, cwd=ctx.work, timeout=1800).check()


def large_file(ctx: Context) -> None:
    name = "large_file"
    # 1 GiB is over the API's 1 GB (10^9 bytes) cap: the full run sends the largest file allowed.
    size = ctx.size(MAX_FILE_BYTES, 128 * MiB)
    folder = ctx.work / "data" / "large"
    path = data.big_wav(folder / "big.wav", size)
    mb = size / 1e6
    for server_kind in ("sandbox S3", "lean server"):
        samples: dict[str, list[tuple[Measured, float, float | None]]] = {"curl": [], "raw": [], "slng": []}
        for round_no in range(ctx.repeats):
            server: RunningSandbox | RunningLean = (
                ctx.servers.sandbox() if server_kind == "sandbox S3" else ctx.servers.lean()
            )
            try:
                for client, sample in one_round(ctx, server, path, size, round_no).items():
                    samples[client].append(sample)
            finally:
                ctx.servers.stop(server)
        report(ctx, name, server_kind, mb, samples)


def one_round(
    ctx: Context, server: RunningSandbox | RunningLean, path: Path, size: int, round_no: int
) -> dict[str, tuple[Measured, float, float | None]]:
    """curl, the raw socket and slng-bulk, one after the other, to the same server: each client's
    run, the server's CPU during it, and (slng-bulk) the upload-only seconds from the ledger."""
    out: dict[str, tuple[Measured, float, float | None]] = {}
    for client in ("curl", "raw", "slng"):
        upload_s: float | None = None
        with ServerCpu(server.pid) as cpu:
            if client == "slng":
                run, upload_s = slng_large(ctx, path.parent, server, round_no)
            else:
                job = f"bench{client}{round_no}"
                if isinstance(server, RunningSandbox):
                    url = presign_sandbox_put(server, f"bench/{job}.wav")
                else:
                    url = presign_lean_put(server, job, path.name)
                run = curl_put(ctx, path, url) if client == "curl" else raw_put(ctx, path, url, size)
        out[client] = (run, cpu.used_s, upload_s)
    return out


def slng_large(
    ctx: Context, folder: Path, server: RunningSandbox | RunningLean, round_no: int
) -> tuple[Measured, float | None]:
    kind = "sandbox" if isinstance(server, RunningSandbox) else "lean"
    ledger = ctx.work / f"large-{kind}-{round_no}.db"
    run = slng_submit(ctx, [str(folder)], server.api_url, server.api_key, ledger, concurrency=8)
    stats = ledger_stats(ledger)
    if stats["created"] != 1:
        raise RuntimeError(f"large file not created: {stats['states']}")
    return run, stats["upload_seconds"]


def report(
    ctx: Context,
    name: str,
    server_kind: str,
    mb: float,
    samples: dict[str, list[tuple[Measured, float, float | None]]],
) -> None:
    def add(client: str, variant: str) -> Result:
        rows = samples[client]
        rates = [mb / m.wall_s for m, _, _ in rows]
        return ctx.suite.add(
            Result(
                name,
                f"{variant} -> {server_kind} ({mb:,.0f} MB)",
                median([m.wall_s for m, _, _ in rows]),
                median(rates),
                "MB/s",
                median([m.cpu_s for m, _, _ in rows]) * 1000 / mb,
                median([m.max_rss_mb for m, _, _ in rows]),
                server_cpu_ms_per_item=median([c for _, c, _ in rows]) * 1000 / mb,
                repeats=len(rows),
                extra={"spread": spread(rates), "note": "CPU and server CPU per MB"},
            )
        )

    raw = add("raw", "raw socket sendfile (the limit)")
    curl = add("curl", "curl -T presigned PUT")
    ours = add("slng", "slng-bulk")
    uploads = [u for _, _, u in samples["slng"] if u]
    if uploads:
        ours.extra["upload_only_mb_per_s"] = mb / median(uploads)
    assert raw.rate and curl.rate and ours.rate
    raw.ratio, raw.ratio_to = 1.0, "raw socket"
    curl.ratio, curl.ratio_to = curl.rate / raw.rate, "raw socket"
    ratio_curl = median(
        [c.wall_s / o.wall_s for (c, _, _), (o, _, _) in zip(samples["curl"], samples["slng"], strict=True)]
    )
    ratio_raw = median(
        [r.wall_s / o.wall_s for (r, _, _), (o, _, _) in zip(samples["raw"], samples["slng"], strict=True)]
    )
    ours.ratio, ours.ratio_to = ratio_curl, "curl"
    ours.extra["note"] = f"{ratio_raw:.2f}x raw socket, CPU and server CPU per MB"
    where = server_kind
    ctx.suite.check(name, f"MB/s vs curl ({where})", ratio_curl, ">= 0.9x", ratio_curl >= 0.9)
    ctx.suite.figure(name, f"MB/s vs raw socket ({where})", ratio_raw)
    if uploads:
        ctx.suite.figure(name, f"upload-only MB/s vs curl ({where})", (mb / median(uploads)) / curl.rate)
    rss = ours.peak_rss_mb or 0.0
    ctx.suite.check(
        name, f"slng-bulk peak RSS MB ({where})", rss, f"< {RSS_LIMIT_MB:.0f}", rss < RSS_LIMIT_MB
    )
