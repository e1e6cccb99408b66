"""The commands: each one's orchestration, also the library API (the CLI only parses and formats)."""
