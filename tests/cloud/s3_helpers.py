"""Putting audio into LocalStack and aiming `slng-bulk` at it."""

from __future__ import annotations

from tests.sandbox.helpers import wav_bytes
from tests.support.localstack import LocalStackS3


def put_audio(server: LocalStackS3, bucket: str, keys: list[str], seconds: float = 0.2) -> dict[str, bytes]:
    """Each key holds a short WAV (a `.txt` key a few bytes of text); the bodies, by key."""
    client = server.client()
    bodies = {}
    for key in keys:
        body = b"notes" if key.endswith(".txt") else wav_bytes(seconds)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        bodies[key] = body
    return bodies


def s3_flags(server: LocalStackS3) -> list[str]:
    return ["--s3-endpoint", server.endpoint, "--s3-region", server.region, "--cloud-allow-http"]


def s3_env(server: LocalStackS3) -> dict[str, str]:
    """The same as `s3_flags`, as the environment of a `slng-bulk` subprocess."""
    return {
        "SLNG_BULK_S3_ENDPOINT": server.endpoint,
        "SLNG_BULK_S3_REGION": server.region,
        "SLNG_BULK_CLOUD_ALLOW_HTTP": "true",
    }
