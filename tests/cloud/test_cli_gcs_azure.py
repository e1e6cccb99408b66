"""`slng-bulk submit --sandbox gs://…` (fake-gcs-server) and `az://…` (Azurite): one job per audio
object, created from a signed URL the sandbox downloads itself, and transcripts with --wait --out."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from obstore.store import AzureStore

from pipeline.errors import ExitCode
from tests.sandbox.helpers import wav_bytes
from tests.storage.cloud_helpers import no_ambient_credentials
from tests.storage.test_cloud_azure import raw_store as azure_store
from tests.support.azurite import Azurite, azurite  # noqa: F401
from tests.support.gcs_emulator import FakeGcs, fake_gcs  # noqa: F401
from tests.support.runs import run_cli

pytestmark = pytest.mark.anyio


def created(ledger: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT path, state FROM files ORDER BY path").fetchall()


def submit_wait(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = run_cli(
        "submit",
        "--sandbox",
        "--ledger",
        str(tmp_path / "l.db"),
        "--progress",
        "none",
        "--wait",
        "--out",
        str(tmp_path / "out"),
        "--cloud-allow-http",
        *args,
        cwd=tmp_path,
    )
    return result.returncode, result.stderr


def test_gs_prefix(monkeypatch: pytest.MonkeyPatch, fake_gcs: FakeGcs, tmp_path: Path) -> None:  # noqa: F811
    no_ambient_credentials(monkeypatch)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", str(fake_gcs.service_account_file))
    bucket = fake_gcs.create_bucket()
    for key in ("calls/a.wav", "calls/b.wav", "calls/skip.txt"):
        fake_gcs.upload(bucket, key, wav_bytes(0.2))
    code, err = submit_wait(tmp_path, f"gs://{bucket}/calls/", "--gcs-endpoint", fake_gcs.endpoint)
    assert code == ExitCode.OK, err
    assert created(tmp_path / "l.db") == [
        (f"gs://{bucket}/calls/a.wav", "created"),
        (f"gs://{bucket}/calls/b.wav", "created"),
    ]
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 2


async def test_az_prefix(monkeypatch: pytest.MonkeyPatch, azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    no_ambient_credentials(monkeypatch)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", azurite.account)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", azurite.account_key)
    container = azurite.create_container()
    store: AzureStore = azure_store(azurite, container)
    for key in ("calls/a.wav", "calls/sub/b c.wav"):  # a name Azure signs decoded (azure_sas)
        await store.put_async(key, wav_bytes(0.2))
    code, err = submit_wait(tmp_path, f"az://{container}/calls/", "--azure-endpoint", azurite.endpoint)
    assert code == ExitCode.OK, err
    assert created(tmp_path / "l.db") == [
        (f"az://{container}/calls/a.wav", "created"),
        (f"az://{container}/calls/sub/b c.wav", "created"),
    ]
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 2
