"""AWS credentials from botocore's standard chain, for obstore's S3 client.

obstore reads the environment, web identity, container and instance credentials itself, but not
the profile files (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`, SSO). botocore's chain
reads all of them, so it is used whenever botocore is installed (it is with `[sandbox]`/`[cloud]`).
Nothing here logs or returns a secret in any text.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from obstore.store import S3Credential

NO_CREDENTIALS: Final = (
    "no AWS credentials found (looked in the environment, the ~/.aws profile files, SSO, web "
    "identity, and the container and instance roles)"
)
# Temporary credentials are asked for again this often; botocore refreshes them before they end.
REASK_AFTER: Final = dt.timedelta(minutes=5)


class BotocoreCredentials:
    """An obstore S3 credential provider over one botocore session."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._credentials: Any = None

    @classmethod
    def available(cls) -> BotocoreCredentials | None:
        try:
            import botocore.session
        except ImportError:
            return None
        return cls(botocore.session.get_session())

    @property
    def region(self) -> str | None:
        region = self._session.get_config_variable("region")
        return str(region) if region else None

    async def ensure(self) -> None:
        """Resolve the chain once (it may ask the instance metadata service): ConfigError if empty."""
        if self._credentials is None:
            self._credentials = await anyio.to_thread.run_sync(self._session.get_credentials)
        if self._credentials is None:
            raise ConfigError(NO_CREDENTIALS)

    async def __call__(self) -> S3Credential:
        await self.ensure()
        frozen = await anyio.to_thread.run_sync(self._credentials.get_frozen_credentials)
        refreshable = hasattr(self._credentials, "refresh_needed")
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": dt.datetime.now(dt.UTC) + REASK_AFTER if refreshable else None,
        }
