"""`resubmit_failed` with a path map, in process: the fast companion of tests/cli/test_retry_path_map.py.

A failed file whose folder moved is read from where the map says it is now, and resubmitted under
the identity the ledger recorded; without the map it is rejected, naming the way out. Both backends.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from pipeline.commands.retry_failed import resubmit_failed
from pipeline.commands.submit import submit
from pipeline.ledger import FileState, open_ledger
from pipeline.sandbox import Sandbox
from pipeline.sources.identity import derive_job_id
from tests.support.runs import md5_of, objects_by_key, settings_for

pytestmark = pytest.mark.anyio


async def test_a_moved_failed_file_is_resubmitted_from_where_the_map_says_under_its_identity(
    sandbox: Sandbox, ledger_target: str, tmp_path: Path
) -> None:
    bad = tmp_path / "nas" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"not audio at all\n" * 40)  # the sandbox's job for it ends FAILED
    await submit([str(bad.parent)], settings_for(sandbox, ledger_target, wait=True))
    [failed] = open_ledger(ledger_target).records()
    assert failed.job_status == "FAILED"
    (tmp_path / "nas").rename(tmp_path / "mirror")
    moved = tmp_path / "mirror" / "broken.wav"

    unmapped = await resubmit_failed(settings_for(sandbox, ledger_target))
    assert (unmapped.rejected, unmapped.queued) == (1, 0)
    assert list(open_ledger(ledger_target).records()) == [failed]
    [why] = [r.reason for r in open_ledger(ledger_target).rejections()]
    assert why.startswith("file is gone:") and "--path-map FROM=TO" in why

    rule = f"{tmp_path / 'nas'}={tmp_path / 'mirror'}"
    mapped = await resubmit_failed(settings_for(sandbox, ledger_target, path_map=[rule]))
    assert (mapped.rejected, mapped.created) == (0, 1)
    [retried] = open_ledger(ledger_target).records()
    assert (retried.id, retried.file_key, retried.path) == (failed.id, failed.file_key, str(bad))
    assert retried.job_id == derive_job_id(failed.file_key, 1) and retried.state is FileState.CREATED
    assert retried.s3_key is not None and objects_by_key(sandbox)[retried.s3_key] == md5_of(moved)

    (tmp_path / "mirror").rename(tmp_path / "elsewhere")
    await anyio.sleep(0.3)  # the new job fails too (same bytes); the map now points at nothing
    lost = await resubmit_failed(settings_for(sandbox, ledger_target, path_map=[rule]))
    assert lost.rejected == 1
    last = [r.reason for r in open_ledger(ledger_target).rejections()][-1]
    assert f"at {moved}; check --path-map" in last, last
