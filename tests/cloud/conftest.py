"""What the cloud-source tests share: the emulators, each with its credentials in the environment
only (tests/support/cloud_env.py)."""

from __future__ import annotations

from tests.support.azurite import azurite  # noqa: F401
from tests.support.cloud_env import aws_env, azure_env, gcs_env  # noqa: F401
from tests.support.gcs_emulator import fake_gcs  # noqa: F401
from tests.support.localstack import localstack_s3  # noqa: F401
