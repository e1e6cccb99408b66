"""What the cloud-source tests share: LocalStack with credentials in the environment only, audio put
into a bucket, and the command line aimed at both."""

from __future__ import annotations

import pytest

from tests.storage.cloud_helpers import no_ambient_credentials
from tests.support.localstack import LocalStackS3, localstack_s3  # noqa: F401


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, localstack_s3: LocalStackS3) -> LocalStackS3:  # noqa: F811
    no_ambient_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", localstack_s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", localstack_s3.secret_key)
    return localstack_s3
