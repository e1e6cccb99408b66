"""What each command offers: defaults in --help, only the options it uses, -v/-q, shell completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import click
import pytest

from pipeline.cli.app import main
from pipeline.cli.options import SHARED_LEDGER, log_level_from_aliases, setting_name_of
from pipeline.config.settings import ENV_PREFIX, Settings, load_settings
from pipeline.errors import ExitCode
from pipeline.ledger import SqliteLedger
from tests.support.runs import child_env, run_cli


def help_text(command: str) -> str:
    """`slng-bulk COMMAND --help`, whitespace folded (click wraps long help lines)."""
    cmd = main.commands[command]
    parent = click.Context(main, info_name="slng-bulk")
    with click.Context(
        cmd, info_name=command, parent=parent, terminal_width=10_000, max_content_width=10_000
    ) as ctx:
        return " ".join(cmd.get_help(ctx).split())


def offered(command: str) -> set[str]:
    """The settings a command takes as options."""
    names = (setting_name_of(p) for p in main.commands[command].params if isinstance(p, click.Option))
    return {name for name in names if name is not None}


@pytest.mark.parametrize("command", sorted(main.commands))
def test_help_shows_every_default_and_it_is_the_real_one(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = help_text(command)
    for name in offered(command):
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        env = f"{ENV_PREFIX}{name.upper()}"
        marker = f"[env: {env}] [default: "
        if default is None or default == []:
            assert marker not in text, f"{command}: {name} has no default to show"
            continue
        assert marker in text, f"{command} --help shows no default for {name}"
        shown = text.split(marker, 1)[1].split("]", 1)[0]
        flag = name.replace("_", "-")
        if isinstance(default, bool):
            assert shown == (flag if default else f"no-{flag}")
            continue
        with monkeypatch.context() as patch:  # what is shown, given back, is the default
            patch.setenv(env, shown)
            assert getattr(load_settings(environment=True), name) == default, f"{name}: shown {shown!r}"
    for param in main.commands[command].params:
        if not isinstance(param, click.Option) or param.name == "help" or setting_name_of(param):
            continue
        default = param.to_info_dict().get("default")
        if isinstance(default, str | int | float) and default not in (0, False):
            assert param.show_default, f"{command} --{param.name} hides its default"


def test_submit_offers_every_setting_but_the_shared_ledger_workers() -> None:
    assert offered("submit") == set(Settings.model_fields) - set(SHARED_LEDGER)


def test_retry_failed_reads_files_where_this_host_sees_them_but_claims_nothing() -> None:
    assert offered("retry-failed") & set(SHARED_LEDGER) == {"path_map", "host_name"}


NOT_OFFERED = {
    "retry-failed": {
        "include",
        "exclude",
        "follow_symlinks",
        "settle",
        "force",
        "dry_run",
        "language",
        "tags",
    },
    "status": {
        "settle",
        "out",
        "formats",
        "wait",
        "chunk_size",
        "max_create_rps",
        "max_presign_rps",
        "force",
    },
    "fetch": {"settle", "wait", "chunk_size", "include", "language", "max_create_rps", "dry_run"},
    "reconcile": {"settle", "wait", "out", "chunk_size", "force", "dry_run", "max_create_rps"},
    "report": {"api_key", "api_url", "concurrency", "settle", "out", "event_loop"},  # reads, no loop
}


@pytest.mark.parametrize("command", sorted(NOT_OFFERED))
def test_options_that_do_nothing_for_a_command_are_not_offered(command: str) -> None:
    assert not offered(command) & NOT_OFFERED[command]
    result = run_cli(command, "--settle", "5")
    assert result.returncode == ExitCode.USAGE and "--settle" in result.stderr


def test_every_command_takes_the_ledger_config_and_log_settings() -> None:
    for command in set(main.commands) - {"sandbox"}:
        assert {"config", "ledger", "log_level", "log_format"} <= offered(command), command


def test_every_command_that_runs_async_work_takes_the_event_loop_setting() -> None:
    for command in set(main.commands) - {"sandbox", "report"}:
        assert "event_loop" in offered(command), command


@pytest.mark.parametrize(
    ("args", "level"),
    [
        ((), "info"),
        (("-v",), "info"),
        (("-vv",), "debug"),
        (("-v", "-v"), "debug"),
        (("-q",), "warning"),
        (("--quiet",), "warning"),
        (("-qq",), "error"),
        (("--log-level", "error"), "error"),
    ],
)
def test_verbose_and_quiet_are_aliases_of_log_level(args: tuple[str, ...], level: str) -> None:
    command = main.commands["report"]
    with command.make_context("report", list(args)) as ctx:
        flags = {
            k: v for k, v in ctx.params.items() if k in Settings.model_fields or k in ("verbose", "quiet")
        }
        log_level_from_aliases(flags)  # what every command does before loading its settings
        assert load_settings(environment=True, **flags).log_level == level


@pytest.mark.parametrize(
    "args", [("-v", "--log-level", "error"), ("-q", "-v"), ("-q", "--log-level", "info")]
)
def test_conflicting_verbosity_is_a_usage_error(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli("report", *args, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_quiet_silences_info_lines_on_the_real_command_line(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    assert run_cli("report", "--ledger", str(ledger), cwd=tmp_path).returncode == ExitCode.CONFIG
    anyio.run(_create_ledger, ledger)
    loud = run_cli("report", "--ledger", str(ledger), "-o", "a.csv", cwd=tmp_path)
    quiet = run_cli("report", "--ledger", str(ledger), "-o", "b.csv", "-q", cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "wrote 0 rows" in loud.stderr and quiet.stderr == ""


async def _create_ledger(path: Path) -> None:
    async with SqliteLedger(path):
        pass


def _completion(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("slng-bulk")  # the installed entry point names the variable
    return subprocess.run(
        [str(script)], env=child_env(env), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script_is_produced(shell: str) -> None:
    result = _completion({"_SLNG_BULK_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert "_SLNG_BULK_COMPLETE" in result.stdout and "slng-bulk" in result.stdout


@pytest.mark.slow
def test_completion_completes_commands_and_flags() -> None:
    commands = _completion(
        {"_SLNG_BULK_COMPLETE": "bash_complete", "COMP_WORDS": "slng-bulk sub", "COMP_CWORD": "1"}
    )
    assert commands.stdout.split() == ["plain,submit"], commands.stdout
    flags = _completion(
        {"_SLNG_BULK_COMPLETE": "bash_complete", "COMP_WORDS": "slng-bulk submit --max-b", "COMP_CWORD": "2"}
    )
    assert "plain,--max-bandwidth" in flags.stdout.split(), flags.stdout
