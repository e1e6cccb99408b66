"""Every way a URL row comes in keeps its promises: `submit_rows` with `{"url": "s3://…"}` dicts and
`"s3://…"` strings, URL lines on stdin, and a plain http(s) URL; each object is one job, whose
identity holds its version and size (so a rerun creates nothing), and the sandbox downloads the
URL as it was sent (`--sign-expiry` as asked, a plain URL byte for byte, its query never stored)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline import submit_rows
from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from pipeline.sources.iterable_rows import RowInput
from tests.cloud.helpers import cloud_settings, put_audio, s3_flags
from tests.sandbox.helpers import wav_bytes
from tests.support.localstack import LocalStackS3
from tests.support.runs import cli_env, run_cli, successful_creates

pytestmark = pytest.mark.anyio


def files(ledger: Path) -> list[tuple[str, int, str | None, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT path, size, object_version, state FROM files ORDER BY path").fetchall()


def sent_urls(sb: Sandbox) -> dict[str, str | None]:
    """The input_url of each job, as the sandbox received it."""
    assert sb.state is not None
    return {job_id: job.input_url for job_id, job in sb.state.jobs.items()}


@pytest.mark.localstack
async def test_submit_rows_takes_url_dicts_and_strings(
    aws_env: LocalStackS3, sandbox: Sandbox, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    bodies = put_audio(aws_env, bucket, ["in/a.wav", "in/b.wav"])
    ledger = tmp_path / "l.db"
    items: list[RowInput] = [
        {"url": f"s3://{bucket}/in/a.wav", "transcription_config": {"language": "fr"}},
        f"s3://{bucket}/in/b.wav",
    ]
    stats = await submit_rows(items, cloud_settings(sandbox, aws_env, ledger, wait=True, sign_expiry=120))
    assert stats.created == 2 and stats.failed == 0, stats
    rows = files(ledger)
    assert [(p, size, state) for p, size, _v, state in rows] == [
        (f"s3://{bucket}/in/a.wav", len(bodies["in/a.wav"]), "created"),
        (f"s3://{bucket}/in/b.wav", len(bodies["in/b.wav"]), "created"),
    ]
    assert all(version for _p, _s, version, _st in rows), "the object's version is its identity"
    assert all(job.status == "DONE" for job in sandbox.jobs().jobs)
    for url in sent_urls(sandbox).values():
        assert url is not None and parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["120"]
    again = await submit_rows(items, cloud_settings(sandbox, aws_env, ledger))
    assert again.created == 0 and again.skipped_done == 2
    assert len(successful_creates(sandbox)) == 2


@pytest.mark.localstack
def test_url_lines_on_stdin(aws_env: LocalStackS3, sandbox_thread: Sandbox, tmp_path: Path) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["in/a.wav", "in/b.wav"])
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    lines = f"s3://{bucket}/in/a.wav\n\ns3://{bucket}/in/b.wav\n"
    args = ["submit", "-", "--wait", "--sign-expiry", "300", *s3_flags(aws_env)]
    first = run_cli(*args, env=env, stdin=lines, cwd=tmp_path)
    assert first.returncode == ExitCode.OK, first.stderr
    rows = files(tmp_path / "l.db")
    assert len(rows) == 2 and all(version and size > 0 for _p, size, version, _s in rows), rows
    assert all(job.status == "DONE" for job in sandbox_thread.jobs().jobs)
    expiries = {
        parse_qs(urlsplit(url or "").query)["X-Amz-Expires"][0] for url in sent_urls(sandbox_thread).values()
    }
    assert expiries == {"300"}
    again = run_cli(*args, env=env, stdin=lines, cwd=tmp_path)
    assert again.returncode == ExitCode.OK, again.stderr
    assert len(successful_creates(sandbox_thread)) == 2


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A plain http server on loopback serving `folder` (the sandbox fetches http from loopback)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_plain_url_is_sent_as_given_and_its_query_never_stored(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "call one.wav").write_bytes(wav_bytes(0.2))
    with serve_folder(served) as base:
        url = f"{base}/call%20one.wav?token=s3cr3t&X-Sig=abc%2Fdef"
        env = cli_env(sandbox_thread, tmp_path / "l.db")
        args = ["submit", "-", "--allow-insecure-http", "--wait", "--out", str(tmp_path / "out")]
        result = run_cli(*args, env=env, stdin=url + "\n", cwd=tmp_path)
        assert result.returncode == ExitCode.OK, result.stderr
        assert list(sent_urls(sandbox_thread).values()) == [url], "sent byte for byte"
        assert [job.status for job in sandbox_thread.jobs().jobs] == ["DONE"]
        assert [(p, st) for p, _size, _v, st in files(tmp_path / "l.db")] == [
            (f"{base}/call%20one.wav", "created")
        ]
        with sqlite3.connect(tmp_path / "l.db") as conn:
            stored = " ".join(
                str(v)
                for table in ("files", "job_history", "rejections", "runs")
                for row in conn.execute(f"SELECT * FROM {table}")
                for v in row
            )
        assert "s3cr3t" not in stored and "s3cr3t" not in result.stderr
        assert any((tmp_path / "out").rglob("*.txt"))
        again = run_cli(*args, env=env, stdin=url + "\n", cwd=tmp_path)
        assert again.returncode == ExitCode.OK, again.stderr
        assert len(successful_creates(sandbox_thread)) == 1
