"""The library face (`import pipeline`): what embedding code uses, against the real sandbox."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import anyio
import pytest

import pipeline
from pipeline.redact import redact, register_secret, secret_scope
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.runs import assert_exactly_once, settings_for

pytestmark = pytest.mark.anyio


async def test_submit_rows_takes_paths_and_dicts_and_rejects_bad_items(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first, second, third = make_tree(tmp_path / "audio", 3)
    items: list[pipeline.RowInput] = [
        str(first),
        {"path": str(second.relative_to(tmp_path)), "transcription_config": {"language": "fr"}},
        {"path": str(third), "extra": {"summarization": True}},
        {"path": str(tmp_path / "missing.wav")},
        {"path": str(first), "colour": "red"},
    ]
    settings = settings_for(sandbox, tmp_path / "l.db")

    stats = await pipeline.submit_rows(iter(items), settings)

    assert isinstance(stats, pipeline.RunStats)
    assert (stats.created, stats.rejected, stats.failed) == (3, 2, 0)
    assert stats.exit_code() is pipeline.ExitCode.REJECTED
    assert_exactly_once(sandbox, [first, second, third])
    configs = [(job.job_config or {})["transcription_config"] for job in sandbox.jobs().jobs]
    assert sorted(c["language"] for c in configs) == ["en", "en", "fr"]
    assert sum(c.get("summarization") is True for c in configs) == 1

    again = await pipeline.submit_rows([first, second, third], settings)  # path-likes too
    # Settings are part of a job's identity: only `first` was sent with the same ones.
    assert (again.created, again.skipped_done) == (2, 1)


def test_public_names_are_exported_and_errors_share_one_base() -> None:
    for name in pipeline.__all__:
        assert hasattr(pipeline, name), name
    for error in (
        pipeline.ConfigError,
        pipeline.LockHeldError,
        pipeline.LedgerWriteError,
        pipeline.TransferError,
    ):
        assert issubclass(error, pipeline.SlngBulkError)
    assert pipeline.ConfigError("x").exit_code is pipeline.ExitCode.CONFIG


async def test_two_runs_in_one_process_mask_their_own_keys_and_forget_them() -> None:
    seen: dict[str, str] = {}
    both_inside = anyio.Event()
    inside = 0

    async def run(name: str, key: str) -> None:
        nonlocal inside
        with secret_scope(key):
            inside += 1
            if inside == 2:
                both_inside.set()
            await both_inside.wait()  # both scopes open at the same time
            seen[name] = redact("key-of-a=sk-aaaa-1111 key-of-b=sk-bbbb-2222")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run, "a", "sk-aaaa-1111")
        tasks.start_soon(run, "b", "sk-bbbb-2222")

    assert seen == {
        "a": "key-of-a=REDACTED key-of-b=sk-bbbb-2222",
        "b": "key-of-a=sk-aaaa-1111 key-of-b=REDACTED",
    }
    assert redact("sk-aaaa-1111 sk-bbbb-2222") == "sk-aaaa-1111 sk-bbbb-2222"  # the runs are over


def test_redacting_filter_masks_a_users_own_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(pipeline.RedactingFilter())
    logger = logging.getLogger("an-embedding-app")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with secret_scope("sk-user-key-1234"):
            logger.warning(
                "calling with %s and %s", "sk-user-key-1234", "https://s3/x?X-Amz-Signature=abc123"
            )
            try:
                raise RuntimeError("Bearer sk-user-key-1234")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "sk-user-key-1234" not in text and "abc123" not in text
    assert text.count("REDACTED") >= 3


def test_register_secret_still_masks_for_the_rest_of_a_one_run_process() -> None:
    def in_fresh_context() -> tuple[str, str]:
        register_secret("sk-cli-process-key")
        return redact("sk-cli-process-key"), redact("other")

    import contextvars

    assert contextvars.copy_context().run(in_fresh_context) == ("REDACTED", "other")
    assert redact("sk-cli-process-key") == "sk-cli-process-key"  # another context never saw it
