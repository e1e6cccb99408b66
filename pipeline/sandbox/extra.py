"""Whether the optional `sandbox` extra is installed; imported first by `pipeline.sandbox`.

botocore (SigV4 presigning and verification) is a dependency of the sandbox only, so a production
install does not pull it in. Without it, importing the sandbox raises `SandboxExtraMissing`: a
`ConfigError` (exit 8, one line from the CLI) that is also an `ImportError`, for code that asks.
"""

from __future__ import annotations

from pipeline.errors import ConfigError

MISSING_EXTRA = "the sandbox needs the optional extra: pip install 'slng-bulk[sandbox]'"


class SandboxExtraMissing(ConfigError, ImportError):
    """The sandbox was asked for, but `pip install 'slng-bulk[sandbox]'` was not run."""


try:
    import botocore  # noqa: F401
except ImportError:
    raise SandboxExtraMissing(MISSING_EXTRA) from None
