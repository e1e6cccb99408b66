"""The sandbox is an optional extra (`slng-bulk[sandbox]`, which owns botocore).

A production install has no botocore: every command but `--sandbox` and `slng-bulk sandbox` must
work without it, and those two say in one line what to install. The subprocesses here run with a
`botocore` package first on PYTHONPATH whose import fails, as it would on such an install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pipeline
from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.imports import loaded_after_importing
from tests.support.runs import child_env, run_cli

MISSING = "the sandbox needs the optional extra: pip install 'slng-bulk[sandbox]'"
PYPROJECT = Path(pipeline.__file__).resolve().parent.parent / "pyproject.toml"


@pytest.fixture
def no_botocore(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import botocore` fails (a stand-in package that raises)."""
    fake = tmp_path / "no-botocore" / "botocore"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named botocore (test stand-in)')\n")
    return {"PYTHONPATH": str(fake.parent)}


def test_botocore_belongs_to_the_sandbox_extra_only() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("botocore")]
    extras = project["optional-dependencies"]
    assert any(d.startswith("botocore") for d in extras["sandbox"])
    # the tests run the sandbox: the test extra pulls the sandbox extra in
    assert any(d.startswith("slng-bulk[") and "sandbox" in d.split("[")[1] for d in extras["test"])


def test_importing_the_package_cli_and_client_does_not_import_the_sandbox() -> None:
    modules = ["pipeline", "pipeline.cli.app", "pipeline.api.client", "pipeline.commands.connect"]
    modules += ["pipeline.commands.submit", "pipeline.follow.downloads", "pipeline.follow.matching"]
    assert loaded_after_importing(modules, ("botocore", "pipeline.sandbox")) == []


def test_the_stand_in_really_hides_botocore(no_botocore: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import botocore"], env=child_env(no_botocore), capture_output=True, text=True
    )
    assert done.returncode != 0 and "ImportError" in done.stderr


@pytest.mark.slow
def test_help_and_a_real_submit_work_without_botocore(
    no_botocore: dict[str, str], sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    helped = run_cli("--help", env=no_botocore, cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "sandbox" in helped.stdout and "submit" in helped.stdout

    make_tree(tmp_path / "in", 2)
    env = {**no_botocore, "SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}
    dry = run_cli("submit", "in", "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == ExitCode.OK, dry.stderr
    submitted = run_cli("submit", "in", "--ledger", "l.db", "--progress", "none", env=env, cwd=tmp_path)
    assert submitted.returncode == ExitCode.OK, submitted.stderr
    assert len(sandbox_thread.jobs().jobs) == 2  # the sandbox runs here, the client without botocore
    status = run_cli("status", "--ledger", "l.db", env=env, cwd=tmp_path)
    assert status.returncode in (ExitCode.OK, ExitCode.FAILED), status.stderr
    assert "Traceback" not in status.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "in", "--sandbox", "--ledger", "l.db"),
        ("submit", "in", "--sandbox", "--wait", "--out", "out", "--ledger", "l.db"),
        ("sandbox",),
        ("sandbox", "--api-port", "0"),
    ],
)
@pytest.mark.slow
def test_the_sandbox_without_its_extra_says_what_to_install(
    no_botocore: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    make_tree(tmp_path / "in", 1)
    result = run_cli(*args, env=no_botocore, cwd=tmp_path, timeout=60)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stderr.splitlines() == [f"slng-bulk: error: {MISSING}"], result.stderr
    assert result.stdout == ""


def test_the_sandbox_command_keeps_its_own_help(tmp_path: Path) -> None:
    helped = run_cli("sandbox", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: slng-bulk sandbox [OPTIONS]" in helped.stdout
    assert "--data-dir" in helped.stdout and "SLNG_BULK_SANDBOX_DATA_DIR" in helped.stdout


def test_the_sandbox_module_does_not_import_the_cli() -> None:
    code = (
        "import sys, json\n"
        "import pipeline.sandbox, pipeline.sandbox.__main__\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pipeline.cli'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
