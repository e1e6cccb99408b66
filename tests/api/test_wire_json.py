"""The JSON on the wire: each request body encoded once, compactly, by the models themselves (or orjson
for the create body with the presign step's echo), and each answer parsed once into its model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pipeline.api import client as client_module
from pipeline.api.client import ApiTimeouts, SlngClient
from pipeline.api.models import (
    CreateFromUploadRequest,
    PresignRequest,
    Tracking,
    TranscriptionConfig,
    VocabItem,
    WireTranscriptionConfig,
)
from pipeline.errors import ErrorClass, TransferError
from pipeline.transport.rates import RateControl
from tests.support.loopback import serving

pytestmark = pytest.mark.anyio

KEY = "sk-wire-json-test"


class Recorder:
    """A tiny API on 127.0.0.1 that keeps the raw bytes and Content-Type of every POST body."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, str]] = []
        self.answer: bytes = b""
        self.base_url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.bodies.append((await request.read(), request.headers.get("Content-Type", "")))
        return web.Response(body=self.answer, content_type="application/json")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SlngClient]:
        app = web.Application()
        app.router.add_post("/v1/batch/jobs", self._post)
        async with serving(app) as self.base_url, aiohttp.ClientSession() as session:
            rates = RateControl.from_limits(1000, 1000, 1000)
            yield SlngClient(session, self.base_url, KEY, rates, ApiTimeouts(read=5, total=10))


def _presign_answer(base_url: str) -> bytes:
    return json.dumps(
        {
            "job_id": "abc1",
            "transcription_config": {"language": "fr"},
            "upload": {"url": f"{base_url}/s3/inputs/abc1/a.wav", "s3_key": "inputs/abc1/a.wav"},
        }
    ).encode()


async def test_presign_body_is_the_models_own_compact_json() -> None:
    recorder = Recorder()
    request = PresignRequest(
        filename="a.wav", job_id="abc1", transcription_config=TranscriptionConfig(language="fr")
    )
    async with recorder.running() as api:
        recorder.answer = _presign_answer(recorder.base_url)
        presigned = await api.presign(request)
    ((body, content_type),) = recorder.bodies
    assert content_type == "application/json"
    assert body == request.model_dump_json(exclude_none=True).encode()
    assert presigned.upload.s3_key == "inputs/abc1/a.wav"
    assert presigned.transcription_config == {"language": "fr"}


@pytest.mark.parametrize("with_orjson", [True, False])
async def test_create_body_carries_the_echo_unchanged_with_or_without_orjson(
    monkeypatch: pytest.MonkeyPatch, with_orjson: bool
) -> None:
    if with_orjson:
        pytest.importorskip("orjson")
    else:
        monkeypatch.setattr(client_module, "orjson", None, raising=False)
    recorder = Recorder()
    recorder.answer = b'{"job_id": "abc1", "status": "queued"}'
    request = CreateFromUploadRequest(
        s3_key="inputs/abc1/a.wav",
        job_id="abc1",
        transcription_config=TranscriptionConfig(language="fr"),
        tracking=Tracking(title="caf\u00e9"),
        metadata={"n": 3},
    )
    echo = {"transcription_config": {"language": "fr", "operating_point": "standard"}, "output_config": None}
    async with recorder.running() as api:
        ack = await api.create_from_upload(request, echo=echo)
    ((body, content_type),) = recorder.bodies
    assert content_type == "application/json"
    assert b": " not in body and b", " not in body  # compact
    assert json.loads(body) == {
        **request.model_dump(mode="json", exclude_none=True),
        "transcription_config": {"language": "fr", "operating_point": "standard"},  # the echo wins
    }
    assert "output_config" not in json.loads(body)  # an empty echo is not sent
    assert "caf\u00e9".encode() in body  # UTF-8, as the models write it
    assert ack.job_id == "abc1" and ack.status == "QUEUED"


def test_encode_json_fallback_matches_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    orjson = pytest.importorskip("orjson")
    payload: dict[str, Any] = {"a": [1, 2.5, None, True], "b": {"c": "caf\u00e9 \u2603"}, "d": ""}
    from pipeline.api.client import encode_json

    expected = orjson.dumps(payload)
    assert encode_json(payload) == expected
    monkeypatch.setattr(client_module, "orjson", None)
    assert encode_json(payload) == expected


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        (b"<html>502</html>", "with a body that is not JSON"),
        (b"[" * 5000 + b"]" * 5000, "with a body that is not JSON"),
        (b'{"job_id": 5}', "unexpected response shape (job_id"),
        (b"", "with a body that is not JSON"),
    ],
)
async def test_a_bad_answer_is_still_a_transient_error_that_says_why(answer: bytes, phrase: str) -> None:
    recorder = Recorder()
    recorder.answer = answer
    request = CreateFromUploadRequest(
        s3_key="inputs/abc1/a.wav", job_id="abc1", transcription_config=TranscriptionConfig()
    )
    async with recorder.running() as api:
        with pytest.raises(TransferError) as caught:
            await api.create_from_upload(request)
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert phrase in str(caught.value) and str(caught.value).startswith("create: ")


def test_the_wire_form_of_a_config_is_built_once_per_distinct_config() -> None:
    """Every file's presign and create send its transcription_config; rows nearly always share one."""
    first = WireTranscriptionConfig.of(TranscriptionConfig(language="fr", diarization="speaker"))
    again = WireTranscriptionConfig.of(TranscriptionConfig(language="fr", diarization="speaker"))
    assert again is first
    assert first.model_dump(exclude_none=True) == {"language": "fr", "diarization": "speaker"}
    other = WireTranscriptionConfig.of(TranscriptionConfig(language="de"))
    assert other is not first and other.language == "de"


def test_configs_that_cannot_be_cached_are_still_built_right() -> None:
    vocab = TranscriptionConfig(language="en", additional_vocab=[VocabItem(content="SLNG")])  # a list
    wire = WireTranscriptionConfig.of(vocab)
    assert wire.model_dump(exclude_none=True) == {"language": "en", "additional_vocab": [{"content": "SLNG"}]}
    extra = WireTranscriptionConfig.of(TranscriptionConfig(language="en"), {"summarization": True})
    assert extra.model_dump(exclude_none=True) == {"summarization": True, "language": "en"}


@pytest.mark.parametrize(
    "echo",
    [{"count": 2**70}, {"deep": json.loads("[" * 300 + "]" * 300)}],
    ids=["integer past 64 bits", "nesting past 255 levels"],
)
def test_an_echo_orjson_refuses_is_still_encoded(echo: dict[str, Any]) -> None:
    # Whatever JSON the server echoed must go back out, with or without orjson installed.
    encoded = client_module.encode_json({"job_id": "j1", **echo})
    assert json.loads(encoded) == {"job_id": "j1", **echo}
