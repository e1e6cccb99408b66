"""The three clouds' emulators as the cloud tests use them: each one's credentials the only ones in
the environment (`aws_env`, `azure_env`, `gcs_env`), a raw obstore store to put objects in, and a
`CloudBucket` aimed at an endpoint. The fixtures need the emulator fixtures in scope: a conftest
imports them together (tests/cloud, tests/storage)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest
from obstore.store import AzureStore, S3Store

from pipeline.storage.cloud import CloudBucket, CloudOptions, parse_cloud_url
from tests.support.azurite import Azurite
from tests.support.gcs_emulator import FakeGcs
from tests.support.localstack import LocalStackS3

Server = TypeVar("Server")
Store = TypeVar("Store", S3Store, AzureStore)


def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no profile files, no instance metadata, no machine CA bundle."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CA_BUNDLE",
        "AWS_ENDPOINT_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def credentials_only(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """`env` in the environment, and none of the machine's own credentials."""
    no_ambient_credentials(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def aws_credentials(server: LocalStackS3) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}


def azure_credentials(server: Azurite) -> dict[str, str]:
    return {"AZURE_STORAGE_ACCOUNT_NAME": server.account, "AZURE_STORAGE_ACCOUNT_KEY": server.account_key}


def gcs_credentials(server: FakeGcs) -> dict[str, str]:
    return {"GOOGLE_SERVICE_ACCOUNT": str(server.service_account_file)}


def credentialed(emulator: str, credentials: Callable[[Server], Mapping[str, str]]) -> Any:
    """A fixture: the session's `emulator` (a fixture's name), its `credentials` the only ones set."""

    @pytest.fixture
    def fixture(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Server:
        server: Server = request.getfixturevalue(emulator)
        credentials_only(monkeypatch, credentials(server))
        return server

    return fixture


aws_env = credentialed("localstack_s3", aws_credentials)
azure_env = credentialed("azurite", azure_credentials)
gcs_env = credentialed("fake_gcs", gcs_credentials)


def bucket_at(endpoint: str, url: str) -> CloudBucket:
    """The project's bucket for `url`, its requests sent to `endpoint` over plain HTTP."""
    return CloudBucket(parse_cloud_url(url), CloudOptions(endpoint=endpoint, allow_http=True))


def s3_store(server: LocalStackS3, bucket: str) -> S3Store:
    env = aws_credentials(server) | {"AWS_REGION": server.region}
    return raw_store(S3Store, bucket, server.endpoint, env)


def azure_store(server: Azurite, container: str) -> AzureStore:
    return raw_store(AzureStore, container, server.endpoint, azure_credentials(server))


def raw_store(kind: type[Store], name: str, endpoint: str, env: Mapping[str, str]) -> Store:
    """An obstore client of an emulator's bucket or container `name`, to put objects in with (not the
    code under test), set up by `env`: the credentials the fixture puts in the environment."""
    # obstore's config takes the environment's names too (AWS_ACCESS_KEY_ID…); its TypedDicts do not
    # list them, hence Any.
    config: Any = {**env, "endpoint": endpoint}
    return kind(name, config=config, client_options={"allow_http": True})
