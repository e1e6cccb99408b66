"""`submit --shard I/N`: N independent runs, each with its own SQLite ledger, split one manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import SqliteLedger as Ledger
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.runs import assert_exactly_once, run_cli


@pytest.mark.slow
def test_four_shard_runs_create_every_job_exactly_once(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 60)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "".join(f"{f}\n" for f in files))
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}
    per_shard: list[set[str]] = []
    for index in range(1, 5):
        ledger = tmp_path / f"shard{index}.db"
        result = run_cli(
            "submit",
            str(manifest),
            "--shard",
            f"{index}/4",
            "--ledger",
            str(ledger),
            "--progress",
            "none",
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        per_shard.append({record.path for record in Ledger(ledger).records()})
    assert all(per_shard), "60 files leave no shard empty"
    assert sum(len(s) for s in per_shard) == len(set().union(*per_shard)) == 60, "disjoint, and all"
    assert_exactly_once(sandbox_thread, files)


@pytest.mark.parametrize("value", ["5/4", "0/3", "two/4"])
def test_a_bad_shard_is_a_usage_error_on_one_line(tmp_path: Path, value: str) -> None:
    result = run_cli("submit", "--dry-run", "--shard", value, str(tmp_path), cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--shard takes I/N with 1 <= I <= N" in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_counts_only_its_shard(tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 40)
    counts = []
    for index in (1, 2):
        result = run_cli(
            "submit", "--dry-run", "--shard", f"{index}/2", str(tmp_path / "audio"), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        counts.append(int(result.stdout.split(" valid file")[0].split()[-1]))
    assert sum(counts) == 40 and all(counts)
