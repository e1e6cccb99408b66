"""slng-bulk: push large batches of audio into the SLNG Batch transcription API."""

__version__ = "0.1.0"
