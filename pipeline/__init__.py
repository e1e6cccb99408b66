"""slng-bulk: push large batches of audio into the SLNG Batch transcription API.

The library entry point is `await pipeline.submit(sources, settings)`; the `slng-bulk` command is a
thin layer over it.
"""

__version__ = "0.1.0"

from pipeline.config.settings import Settings, load_settings
from pipeline.flow.commands import submit

__all__ = ["Settings", "__version__", "load_settings", "submit"]
