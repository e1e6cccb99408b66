"""`slng-bulk submit --sandbox gs://…` (fake-gcs-server) and `az://…` (Azurite): one job per audio
object, created from a signed URL the sandbox downloads itself, and transcripts with --wait --out."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.cloud.helpers import sandbox_submit
from tests.sandbox.helpers import wav_bytes
from tests.support.azurite import Azurite
from tests.support.cloud_env import azure_store
from tests.support.gcs_emulator import FakeGcs

pytestmark = pytest.mark.anyio


def created(ledger: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT path, state FROM files ORDER BY path").fetchall()


def submit_wait(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = sandbox_submit(tmp_path, "--wait", "--out", str(tmp_path / "out"), "--cloud-allow-http", *args)
    return result.returncode, result.stderr


def test_gs_prefix(gcs_env: FakeGcs, tmp_path: Path) -> None:
    bucket = gcs_env.create_bucket()
    for key in ("calls/a.wav", "calls/b.wav", "calls/skip.txt"):
        gcs_env.upload(bucket, key, wav_bytes(0.2))
    code, err = submit_wait(tmp_path, f"gs://{bucket}/calls/", "--gcs-endpoint", gcs_env.endpoint)
    assert code == ExitCode.OK, err
    assert created(tmp_path / "l.db") == [
        (f"gs://{bucket}/calls/a.wav", "created"),
        (f"gs://{bucket}/calls/b.wav", "created"),
    ]
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 2


async def test_az_prefix(azure_env: Azurite, tmp_path: Path) -> None:
    container = azure_env.create_container()
    store = azure_store(azure_env, container)
    for key in ("calls/a.wav", "calls/sub/b c.wav"):  # a name Azure signs decoded (azure_sas)
        await store.put_async(key, wav_bytes(0.2))
    code, err = submit_wait(tmp_path, f"az://{container}/calls/", "--azure-endpoint", azure_env.endpoint)
    assert code == ExitCode.OK, err
    assert created(tmp_path / "l.db") == [
        (f"az://{container}/calls/a.wav", "created"),
        (f"az://{container}/calls/sub/b c.wav", "created"),
    ]
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 2
