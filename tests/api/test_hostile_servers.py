"""Hostile servers: the client turns every bad answer into a clear, classified error, never a crash,
a hang, a followed redirect or a leaked key.

`tests/support/hostile.py` is a tiny aiohttp.web API + S3 on 127.0.0.1 that can misbehave per
operation. First at the client level (every behaviour × operation, each bounded in time), then the
S3 PUT, then through the real `slng-bulk submit` command line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest

import pipeline
from pipeline.api.client import (
    MAX_RESPONSE_BYTES,
    ApiTimeouts,
    SlngClient,
    check_transport,
)
from pipeline.api.models import (
    CreateFromUploadRequest,
    PresignRequest,
    TranscriptionConfig,
    UploadTarget,
)
from pipeline.errors import ConfigError, ErrorClass, ExitCode, TransferError
from pipeline.storage.upload import ListedFile, PutRequest, UploadOptions, put_file
from pipeline.transport.loopback import is_loopback_host
from pipeline.transport.rates import RateControl
from tests.support.audio import make_tree, write_wav
from tests.support.hostile import SIGNATURE, HostileServer
from tests.support.runs import run_cli

pytestmark = pytest.mark.anyio

TIMEOUTS = ApiTimeouts(connect=2.0, read=0.5, total=1.5)

DEADLINE = 10.0  # no single call may take longer than this, whatever the server does


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer().run_in_thread() as server:
        yield server


def _client(session: aiohttp.ClientSession, server: HostileServer, **kwargs: bool) -> SlngClient:
    rates = RateControl.from_limits(1000, 1000, 1000)
    return SlngClient(session, server.base_url, server.api_key, rates, TIMEOUTS, **kwargs)


async def _call(server: HostileServer, operation: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = _client(session, server)
        if operation == "presign":
            request = PresignRequest(
                filename="a.wav", job_id="abc1", transcription_config=TranscriptionConfig()
            )
            await client.presign(request)
        elif operation == "create":
            body = CreateFromUploadRequest(
                s3_key="inputs/abc1/a.wav", job_id="abc1", transcription_config=TranscriptionConfig()
            )
            await client.create_from_upload(body)
        else:
            server.created.add("abc1")
            await client.get_job("abc1")


async def _failure(server: HostileServer, operation: str) -> tuple[TransferError, float]:
    started = time.monotonic()
    with anyio.fail_after(DEADLINE):
        with pytest.raises(TransferError) as caught:
            await _call(server, operation)
    return caught.value, time.monotonic() - started


# behaviour -> (error class, a phrase the message must contain)
EXPECTED: dict[str, tuple[ErrorClass, str]] = {
    "not_json": (ErrorClass.TRANSIENT, "not JSON"),
    "wrong_shape": (ErrorClass.TRANSIENT, "unexpected response shape"),
    "deep_json": (ErrorClass.TRANSIENT, "not JSON"),
    "huge": (ErrorClass.TRANSIENT, f"larger than {MAX_RESPONSE_BYTES} bytes"),
    "huge_declared": (ErrorClass.TRANSIENT, f"larger than {MAX_RESPONSE_BYTES} bytes"),
    "redirect301": (ErrorClass.PERMANENT, "unexpected redirect (HTTP 301)"),
    "redirect302": (ErrorClass.PERMANENT, "unexpected redirect (HTTP 302)"),
    "redirect307": (ErrorClass.PERMANENT, "unexpected redirect (HTTP 307)"),
    "redirect308": (ErrorClass.PERMANENT, "unexpected redirect (HTTP 308)"),
    "hang": (ErrorClass.TRANSIENT, "timed out"),
    "slow_loris": (ErrorClass.TRANSIENT, "timed out"),
    "echo_secrets": (ErrorClass.PERMANENT, "HTTP 400"),
    "status_500": (ErrorClass.TRANSIENT, "HTTP 500"),
}


@pytest.mark.parametrize("operation", ["presign", "create", "get"])
@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
async def test_every_bad_api_answer_is_a_classified_error_in_bounded_time(
    hostile: HostileServer, operation: str, behaviour: str
) -> None:
    setattr(hostile, operation, behaviour)
    error, seconds = await _failure(hostile, operation)

    error_class, phrase = EXPECTED[behaviour]
    assert error.error_class is error_class, str(error)
    assert phrase in str(error)
    assert str(error).startswith(operation + ":")  # says which call failed
    assert "\n" not in str(error) and len(str(error)) < 600  # one readable line, not a body dump
    # Secrets never in the message, even when the server repeats them back.
    assert hostile.api_key not in str(error) and SIGNATURE not in str(error)
    # The bearer key never travels to a redirect target: nothing reached it at all.
    assert hostile.caught == []
    if behaviour in ("hang", "slow_loris"):
        assert seconds < TIMEOUTS.total + 2.0


async def test_the_response_cap_is_4_mib_and_a_larger_body_is_not_read_whole(hostile: HostileServer) -> None:
    hostile.presign = "huge_declared"  # says 6 GiB, trickles: refused from the header, at once
    error, seconds = await _failure(hostile, "presign")
    assert "larger than" in str(error) and seconds < 1.0


@pytest.mark.parametrize(
    ("behaviour", "phrase"),
    [("insecure_upload", "http://example.com/s3/bucket/"), ("ftp_upload", "is not an http(s) URL")],
)
async def test_presign_answer_with_an_unsafe_upload_url_fails_that_file(
    hostile: HostileServer, behaviour: str, phrase: str
) -> None:
    hostile.presign = behaviour
    error, _ = await _failure(hostile, "presign")
    assert error.error_class is ErrorClass.PERMANENT
    assert "upload URL from the API" in str(error) and phrase in str(error)
    assert SIGNATURE not in str(error) and "X-Amz" not in str(error)  # the query is never shown


async def test_insecure_upload_url_is_accepted_only_when_allowed(hostile: HostileServer) -> None:
    hostile.presign = "insecure_upload"
    async with aiohttp.ClientSession() as session:
        client = _client(session, hostile, allow_insecure_http=True)
        request = PresignRequest(filename="a.wav", job_id="abc1", transcription_config=TranscriptionConfig())
        answer = await client.presign(request)
    assert answer.upload.url.startswith("http://example.com/")


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.1:8080", "http://api.batch.slng.ai", "ftp://127.0.0.1"]
)
async def test_client_refuses_a_plain_http_api_url_that_is_not_loopback(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError) as caught:
            SlngClient(session, url, "sk-k", RateControl.from_limits(1, 1, 1))
    message = str(caught.value)
    assert "API URL" in message
    if url.startswith("http:"):
        assert "is not https" in message and "--allow-insecure-http" in message


def test_transport_rules() -> None:
    for ok in ("https://example.com", "http://127.0.0.1:1", "http://localhost/x", "http://[::1]:8/"):
        check_transport(ok, "x", allow_insecure_http=False)
    check_transport("http://example.com", "x", allow_insecure_http=True)
    for bad in ("http://example.com", "http://127.0.0.1.nip.io", "http://localhost.example.com"):
        with pytest.raises(ConfigError):
            check_transport(bad, "x", allow_insecure_http=False)
    with pytest.raises(ConfigError, match="not an http"):
        check_transport("file:///etc/passwd", "x", allow_insecure_http=True)
    # A user:password in the URL is never repeated in the message.
    with pytest.raises(ConfigError) as caught:
        check_transport("http://user:hunter22@example.com/?X-Amz-Signature=abc", "x", False)
    assert "hunter22" not in str(caught.value) and "abc" not in str(caught.value)


def test_the_loopback_verdict_is_worked_out_once_per_host() -> None:
    """Every presign answer's upload URL is checked: the host's verdict is remembered (bounded), so a
    run of many files to one S3 endpoint does not parse the same address again for each one."""
    is_loopback_host.cache_clear()
    for i in range(100):
        check_transport(f"http://127.0.0.1:9/inputs/{i}.wav?X-Amz-Signature={i}", "x", False)
    info = is_loopback_host.cache_info()
    assert (info.misses, info.hits) == (1, 99)
    assert info.maxsize is not None


def _package_source() -> str:
    return "\n".join(p.read_text() for p in Path(pipeline.__file__).parent.rglob("*.py"))


async def test_tls_verification_is_on_by_default() -> None:
    """The session the commands use verifies certificates: no `ssl=False` anywhere in the package."""
    source = _package_source()
    assert "ssl=False" not in source and "verify_ssl" not in source and "CERT_NONE" not in source
    connector = aiohttp.TCPConnector()
    try:
        assert connector._ssl is True  # aiohttp's default: verify with the system trust store
    finally:
        await connector.close()


# --- the S3 PUT -------------------------------------------------------------------------------------


async def _put(server: HostileServer, path: Path, options: UploadOptions) -> None:
    target = UploadTarget(
        url=server.upload_url("inputs/abc1/a.wav"),
        s3_key="inputs/abc1/a.wav",
        headers={"Content-Type": "application/octet-stream"},
    )
    st = await anyio.Path(path).stat()
    async with aiohttp.ClientSession() as session:
        await put_file(session, PutRequest(target, ListedFile(path, st.st_size, st.st_mtime_ns), options))


@pytest.mark.parametrize(
    ("behaviour", "phrase"),
    [
        ("redirect301", "HTTP 301"),
        ("redirect307", "HTTP 307"),
        ("hang", "upload stalled"),
        ("status_500", "HTTP 500 InternalError"),
        ("echo_secrets", "HTTP 403 SignatureDoesNotMatch"),
        ("reset", "upload to http://127.0.0.1"),
    ],
)
async def test_hostile_s3_put_is_a_clear_error_and_redirects_are_not_followed(
    hostile: HostileServer, tmp_path: Path, behaviour: str, phrase: str
) -> None:
    hostile.put = behaviour
    audio = write_wav(tmp_path / "a.wav")
    with anyio.fail_after(DEADLINE), pytest.raises(TransferError) as caught:
        await _put(hostile, audio, UploadOptions(stall_timeout=1.0, response_timeout=30.0))
    message = str(caught.value)
    assert phrase in message, message
    assert SIGNATURE not in message and "X-Amz-Credential=AKIA" not in message
    assert hostile.caught == []
    assert hostile.requests_to("/s3") and all(
        "Authorization" not in seen.headers for seen in hostile.requests_to("/s3")
    ), "the SLNG bearer key must never be sent to S3"


async def test_honest_put_succeeds_against_the_hostile_server_in_ok_mode(
    hostile: HostileServer, tmp_path: Path
) -> None:
    """Control: the harness itself is not what makes the tests above fail."""
    await _put(hostile, write_wav(tmp_path / "a.wav"), UploadOptions())


# --- through the command line ---------------------------------------------------------------------

CLI_CASES: dict[str, tuple[dict[str, str], str]] = {
    "S3 hangs": ({"put": "hang"}, "upload stalled"),
    "S3 drops the connection": ({"put": "reset"}, "ServerDisconnectedError"),
    "presign not JSON": ({"presign": "not_json"}, "not JSON"),
    "presign huge": ({"presign": "huge"}, "larger than"),
    "presign wrong shape": ({"presign": "wrong_shape"}, "unexpected response shape"),
    "presign redirect": ({"presign": "redirect307"}, "unexpected redirect"),
    "presign insecure URL": ({"presign": "insecure_upload"}, "is not https"),
    "presign hangs": ({"presign": "hang"}, "timed out"),
    "create slow loris": ({"create": "slow_loris", "get": "ok"}, "timed out"),
    "create echoes secrets": ({"create": "echo_secrets"}, "HTTP 400"),
    "create redirect": ({"create": "redirect302"}, "unexpected redirect"),
    "S3 redirect": ({"put": "redirect307"}, "HTTP 307"),
    "S3 echoes secrets": ({"put": "echo_secrets", "presign": "ok"}, "SignatureDoesNotMatch"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_against_a_hostile_server_fails_files_cleanly(tmp_path: Path, case: str) -> None:
    behaviours, phrase = CLI_CASES[case]
    files = make_tree(tmp_path / "in", 2)
    with HostileServer(**behaviours).run_in_thread() as server:
        started = time.monotonic()
        result = run_cli(
            "submit",
            str(tmp_path / "in"),
            "--ledger",
            str(tmp_path / "l.db"),
            "--request-timeout",
            "0.5",
            "--stall-timeout",
            "1",
            "--retries",
            "1",
            "--retry-max-elapsed",
            "5",
            "--log-level",
            "debug",
            "--progress",
            "none",
            env={"SLNG_API_KEY": server.api_key, "SLNG_BULK_API_URL": server.base_url},
            cwd=tmp_path,
            timeout=90,
        )
        elapsed = time.monotonic() - started
        caught = server.caught
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.FAILED, output
    assert "Traceback" not in output
    for f in files:
        assert f"FAILED {f}" in output
    assert phrase in output
    assert server.api_key not in output and SIGNATURE not in output
    assert caught == [], "a redirect was followed"
    assert elapsed < 60
