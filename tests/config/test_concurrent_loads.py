"""Two settings loads in one process do not see each other's --config.

The first load blocks while reading its key from a pipe (`--api-key-file <(pass slng)`), after it
has chosen its config file; a second load with another config file runs to the end meanwhile. With a
module-global override the first load then read the second's choice (or none at all).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

from pipeline.config.settings import Settings, load_settings


def _open_writer_once_read(fifo: Path, timeout: float = 10.0) -> int:
    """The pipe's write end, opened as soon as a reader holds the other end (the load is inside)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def test_two_concurrent_loads_keep_their_own_config_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("concurrency = 3\n")
    (tmp_path / "b.toml").write_text("concurrency = 5\n")
    fifo = tmp_path / "key.pipe"
    os.mkfifo(fifo)
    results: dict[str, Settings | BaseException] = {}

    def first() -> None:
        try:
            results["a"] = load_settings(environment=True, config=tmp_path / "a.toml", api_key_file=fifo)
        except BaseException as exc:
            results["a"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    writer = _open_writer_once_read(fifo)
    try:
        second = load_settings(
            environment=True, config=tmp_path / "b.toml"
        )  # runs to the end while the first waits
    finally:
        os.write(writer, b"sk-from-a-pipe-0123\n")
        os.close(writer)
        thread.join(timeout=10)
    assert not thread.is_alive()
    loaded = results["a"]
    assert isinstance(loaded, Settings), loaded
    assert second.concurrency == 5 and second.config == tmp_path / "b.toml"
    assert loaded.concurrency == 3 and loaded.config == tmp_path / "a.toml"
    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == "sk-from-a-pipe-0123"


def test_a_load_leaves_no_config_choice_behind(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("concurrency = 3\n")
    assert load_settings(environment=True, config=tmp_path / "a.toml").concurrency == 3
    assert load_settings(environment=True).concurrency == 8  # the default again: no ./slng-bulk.toml here
