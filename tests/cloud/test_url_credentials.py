"""A manifest's cloud `url` rows are checked against the credentials before any job is created,
whatever comes before them in the manifest: a missing or refused credential is one line, exit 8,
and no job, even when a hundred local rows precede the first `url` row (more than the row feed
hands the pool at once). LocalStack does not check header signatures, so the refusal comes from
the sandbox's strict S3, which refuses a wrong secret as AWS does."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.sandbox.helpers import wav_bytes
from tests.support.cloud_env import no_ambient_credentials
from tests.support.runs import cli_env, run_cli, successful_creates

LOCAL_ROWS = 100


def manifest_with_url_last(tmp_path: Path, kind: str, url: str) -> Path:
    audio = tmp_path / "audio"
    audio.mkdir()
    body = wav_bytes(0.05)
    paths = []
    for i in range(LOCAL_ROWS):
        (audio / f"{i:03d}.wav").write_bytes(body)
        paths.append(str(audio / f"{i:03d}.wav"))
    if kind == "csv":
        manifest = tmp_path / "m.csv"
        manifest.write_text("path,url\n" + "".join(f"{p},\n" for p in paths) + f",{url}\n")
    else:
        manifest = tmp_path / "m.jsonl"
        manifest.write_text("".join(f'{{"path": "{p}"}}\n' for p in paths) + f'{{"url": "{url}"}}\n')
    return manifest


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("credentials", ["refused", "missing"])
def test_bad_credentials_for_a_url_row_stop_before_any_job(
    sandbox_thread: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, credentials: str
) -> None:
    no_ambient_credentials(monkeypatch)
    manifest = manifest_with_url_last(tmp_path, kind, f"s3://{sandbox_thread.bucket}/in/a.wav")
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    if credentials == "refused":
        env |= {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0", "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    flags = ["--s3-endpoint", sandbox_thread.s3_url, "--cloud-allow-http"]
    result = run_cli("submit", str(manifest), *flags, env=env, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = "refused the credentials" if credentials == "refused" else "no AWS credentials found"
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "not-the-secret" not in result.stderr and "AKIAWRONG" not in result.stderr
    assert successful_creates(sandbox_thread) == []
    assert "presign" not in sandbox_thread.stats().requests
