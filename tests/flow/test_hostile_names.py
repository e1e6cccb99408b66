"""End to end: file names that need percent-encoding go up (and come back) under exactly their key.

A presigned URL must leave the client byte for byte as the API gave it. An HTTP client that
normalises it (aiohttp via yarl turns `%27` into `'`, `%3B` into `;`) breaks the signature on a
server that checks it over the path as sent (the sandbox's S3, GCS, CloudFront), and on a server
that re-encodes first (LocalStack) the object lands under another key (`semi;colon.wav` as `semi`).

Every name here is submitted through `submit` over loopback HTTP, and then: every file is created,
its object is stored under exactly the `s3_key` its job names, and the bytes are identical (MD5).
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from pipeline.api.models import JobFiles
from pipeline.ledger import FileRecord, FileState, SqliteLedger
from pipeline.sandbox import Sandbox, SandboxConfig
from pipeline.storage.download import download
from tests.sandbox.helpers import JOBS, auth, body_as
from tests.support.audio import write_wav
from tests.support.localstack import LocalStackS3, localstack_s3  # noqa: F401
from tests.support.runs import md5_of, run_submit

pytestmark = pytest.mark.anyio

PUNCTUATION = [c for c in string.punctuation if c != "/"]  # '/' is the one a file name cannot hold
CAFE = "caf\u00e9"


def hostile_names() -> list[str]:
    """One name per printable ASCII punctuation character, then the mixtures that break URLs."""
    names = [f"p{c}q.wav" for c in PUNCTUATION]
    names += [
        "all" + "".join(PUNCTUATION) + ".wav",  # the sandbox keeps what follows the last '\'
        "all" + "".join(c for c in PUNCTUATION if c != "\\") + ".wav",
        "semi;colon.wav",
        "apos'trophe.wav",
        "two words.wav",
        "two  spaces.wav",
        "pct%20space.wav",
        "pct%2Fslash.wav",
        "pct%25pct.wav",
        "lone%.wav",
        "%.wav",
        unicodedata.normalize("NFC", CAFE) + ".wav",
        unicodedata.normalize("NFD", CAFE) + ".wav",
        "rec\U0001f600.wav",
        "\U0001f399\ufe0f mic.wav",
    ]
    return names


def write_hostile_tree(root: Path) -> list[Path]:
    names = hostile_names()
    assert len(set(names)) == len(names)
    return [write_wav(root / name, 0.02, 200.0 + i) for i, name in enumerate(names)]


def records(ledger: Path) -> list[FileRecord]:
    return list(SqliteLedger(ledger).records())


def assert_all_created(files: list[Path], found: list[FileRecord]) -> dict[str, str]:
    """Every file created, each under its own s3_key; returns s3_key -> MD5 of the local file."""
    by_path = {record.path: record for record in found}
    assert sorted(by_path) == sorted(str(f) for f in files)
    problems = [(r.path, r.state.value, r.error) for r in found if r.state is not FileState.CREATED]
    assert not problems, problems
    expected: dict[str, str] = {}
    for f in files:
        record = by_path[str(f)]
        assert record.s3_key is not None
        assert record.s3_key.startswith(f"inputs/{record.job_id}/")
        expected[record.s3_key] = md5_of(f)
    assert len(expected) == len(files), "two files share one s3_key"
    return expected


@pytest.fixture(autouse=True)
def _isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


async def test_hostile_names_land_under_their_keys_in_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    files = write_hostile_tree(tmp_path / "audio")

    stats = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")

    found = records(tmp_path / "l.db")
    expected = assert_all_created(files, found)
    assert (stats.created, stats.failed, stats.rejected) == (len(files), 0, 0)
    stored = {o.key: o.md5 for o in sandbox.objects().objects if o.key.startswith("inputs/")}
    assert stored == expected
    # The name reached the sandbox intact (no byte lost to a re-encoding on the way).
    by_path = {r.path: r for r in found}
    for f in files:
        if "\\" not in f.name:
            record = by_path[str(f)]
            assert record.s3_key == f"inputs/{record.job_id}/{f.name.strip()}"


async def test_download_through_a_url_that_needs_percent_encoding(sandbox: Sandbox, tmp_path: Path) -> None:
    """The input's presigned GET (its key is the hostile name) comes back byte for byte."""
    files = write_hostile_tree(tmp_path / "audio")
    await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")
    found = {r.path: r for r in records(tmp_path / "l.db")}
    async with aiohttp.ClientSession() as http:
        for i, f in enumerate(files):
            job_id = found[str(f)].job_id
            async with http.get(f"{sandbox.api_url}{JOBS}/{job_id}/files", headers=auth(sandbox)) as resp:
                job_files = await body_as(resp, JobFiles)
            url = job_files.inputs[0].download_url
            key_name = str(found[str(f)].s3_key).rsplit("/", 1)[-1]
            if quote(key_name, safe="-._~") != key_name:
                assert "%" in url.split("?", 1)[0]  # the path does need percent-encoding
            target = tmp_path / "back" / f"{i}.wav"
            size = await download(http, url, target, allow_insecure_http=False)
            assert size == f.stat().st_size
            assert hashlib.md5(target.read_bytes()).hexdigest() == md5_of(f)


# --------------------------------------------------------------------------------------------------
# LocalStack: the sandbox API presigns for it, so LocalStack (not the sandbox) decides the key.


@pytest.fixture
async def external(localstack_s3: LocalStackS3) -> AsyncIterator[tuple[Sandbox, Any, str]]:  # noqa: F811
    bucket = localstack_s3.create_bucket("slng-names")
    cfg = SandboxConfig(
        job_step_seconds=0.05,
        s3_endpoint=localstack_s3.endpoint,
        s3_access_key=localstack_s3.access_key,
        s3_secret_key=localstack_s3.secret_key,
        s3_bucket=bucket,
        s3_region=localstack_s3.region,
    )
    async with Sandbox(cfg).run() as sb:
        yield sb, localstack_s3.client(), bucket


@pytest.mark.localstack
@pytest.mark.timeout(180)
async def test_hostile_names_land_under_their_keys_in_localstack(
    external: tuple[Sandbox, Any, str], tmp_path: Path
) -> None:
    sb, s3, bucket = external
    files = write_hostile_tree(tmp_path / "audio")

    stats = await run_submit(sb, [tmp_path / "audio"], tmp_path / "l.db")

    expected = assert_all_created(files, records(tmp_path / "l.db"))
    assert (stats.created, stats.failed, stats.rejected) == (len(files), 0, 0)
    stored: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="inputs/"):
        for item in page.get("Contents", []):
            stored[item["Key"]] = str(item["ETag"]).strip('"')
    assert stored == expected
