"""Malformed multipart create bodies, sent as raw bytes: each is a 400 with the JSON error envelope.

aiohttp's multipart reader raises plain ValueError/LookupError on a broken body; before this was
handled, those escaped the handlers as aiohttp's plain-text 500.
"""

from __future__ import annotations

import json

import pytest

from pipeline.sandbox import Sandbox
from tests.sandbox.helpers import JOBS, raw_http, wav_bytes

pytestmark = pytest.mark.anyio

BOUNDARY = "sandboxboundary"
CONFIG_PART = (['Content-Disposition: form-data; name="transcription_config"'], b'{"language": "en"}')
FILE_PART = (
    ['Content-Disposition: form-data; name="file"; filename="a.wav"', "Content-Type: audio/wav"],
    wav_bytes(0.1),
)


def form(parts: list[tuple[list[str], bytes]], boundary: str = BOUNDARY, closed: bool = True) -> bytes:
    """A multipart body written by hand, so it can be wrong in ways no client library allows."""
    out = b""
    for headers, data in parts:
        out += f"--{boundary}\r\n".encode() + "".join(h + "\r\n" for h in headers).encode()
        out += b"\r\n" + data + b"\r\n"
    if closed:
        out += f"--{boundary}--\r\n".encode()
    return out


def named(name: str, value: bytes, *extra_headers: str) -> tuple[list[str], bytes]:
    return ([f'Content-Disposition: form-data; name="{name}"', *extra_headers], value)


BAD_CHARSET = named("job_id", b"a1", "Content-Type: text/plain; charset=nope")
CASES: dict[str, bytes] = {
    "part without a name": form([FILE_PART, CONFIG_PART, (["Content-Disposition: form-data"], b"x")]),
    "part without Content-Disposition": form([FILE_PART, CONFIG_PART, ([], b"x")]),
    "unknown part name": form([FILE_PART, CONFIG_PART, named("surprise", b"x")]),
    "duplicated field": form([FILE_PART, CONFIG_PART, named("job_id", b"a1"), named("job_id", b"a2")]),
    "duplicated config": form([FILE_PART, CONFIG_PART, CONFIG_PART]),
    "second file": form([FILE_PART, CONFIG_PART, FILE_PART]),
    "boundary not the declared one": form([FILE_PART, CONFIG_PART], boundary="otherboundary"),
    "no closing boundary": form([FILE_PART, CONFIG_PART], closed=False),
    "body cut inside a part": form([CONFIG_PART, FILE_PART])[:-60],
    "not multipart at all": b"hello, world",
    "empty body": b"",
    "unknown charset": form([FILE_PART, CONFIG_PART, BAD_CHARSET]),
    "field not valid UTF-8": form([FILE_PART, CONFIG_PART, named("job_id", b"\xff\xfe")]),
}
NO_BOUNDARY = ["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="']


async def post_raw(sb: Sandbox, body: bytes, content_type: str) -> tuple[int | None, bytes]:
    headers = {
        "Authorization": f"Bearer {sb.api_key}",
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
    }
    return await raw_http(sb.api_url + JOBS, "POST", headers, body)


def assert_envelope(status: int | None, body: bytes, expected_status: int = 400) -> str:
    assert status == expected_status, body[:300]
    parsed = json.loads(body)
    assert isinstance(parsed, dict) and set(parsed) == {"error"}, parsed
    assert isinstance(parsed["error"], str) and parsed["error"]
    return parsed["error"]


@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_multipart_is_400_with_error_envelope(sandbox: Sandbox, case: str) -> None:
    status, answer = await post_raw(sandbox, CASES[case], f"multipart/form-data; boundary={BOUNDARY}")
    assert_envelope(status, answer)
    assert sandbox.jobs().jobs == []
    assert sandbox.object_info("inputs/a1/a.wav") is None


@pytest.mark.parametrize("content_type", NO_BOUNDARY)
async def test_multipart_without_a_usable_boundary_is_400(sandbox: Sandbox, content_type: str) -> None:
    status, answer = await post_raw(sandbox, form([FILE_PART, CONFIG_PART]), content_type)
    assert_envelope(status, answer)


async def test_messages_name_the_offending_part(sandbox: Sandbox) -> None:
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    dup = form([FILE_PART, CONFIG_PART, named("job_id", b"a1"), named("job_id", b"a2")])
    assert assert_envelope(*await post_raw(sandbox, dup, ctype)) == "Duplicate field: job_id"
    nameless = form([FILE_PART, CONFIG_PART, (["Content-Disposition: form-data"], b"x")])
    assert assert_envelope(*await post_raw(sandbox, nameless, ctype)) == "A multipart part has no name"
    bad_text = form([FILE_PART, CONFIG_PART, named("job_id", b"\xff")])
    assert assert_envelope(*await post_raw(sandbox, bad_text, ctype)) == "job_id is not valid UTF-8 text"


async def test_json_body_with_unknown_charset_is_400(sandbox: Sandbox) -> None:
    body = b'{"input_url": "https://example.com/a.wav", "transcription_config": {"language": "en"}}'
    status, answer = await post_raw(sandbox, body, "application/json; charset=nope")
    assert_envelope(status, answer)


async def test_a_well_formed_body_written_by_hand_still_creates(sandbox: Sandbox) -> None:
    body = form([FILE_PART, CONFIG_PART, named("job_id", b"a1")])
    status, answer = await post_raw(sandbox, body, f"multipart/form-data; boundary={BOUNDARY}")
    assert status == 202, answer
    assert [job.job_id for job in sandbox.jobs().jobs] == ["a1"]
