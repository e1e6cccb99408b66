"""slng-bulk: push large batches of audio into the SLNG Batch transcription API.

The library entry point is `await pipeline.submit(sources, settings)`; the `slng-bulk` command is a
thin layer over it.
"""

__version__ = "0.1.0"

from pipeline.runner import submit  # noqa: E402  (needs __version__ defined first)
from pipeline.settings import Settings, load_settings  # noqa: E402

__all__ = ["Settings", "__version__", "load_settings", "submit"]
