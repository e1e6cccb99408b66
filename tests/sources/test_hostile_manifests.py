"""Hostile manifests, end to end and by property.

A corpus of malformed input, through the real `slng-bulk submit` (subprocess, sandbox thread):
broken CSV quoting, a BOM, wrong encodings, NUL bytes, enormous lines and cells, deeply nested
JSON, numbers where strings belong, `..` paths, control characters and odd Unicode, symlink loops,
a FIFO and devices named as files, all in CSV, JSONL, a directory and stdin at once. Each bad row
gets one message naming its source and line; every good row becomes exactly one job; the exit code
is REJECTED (3); nothing crashes. Then files deleted, truncated or grown between validation and
upload (the sandbox holds the presign or the PUT: a hook in time). Then hypothesis: random garbage
between good rows never costs a good row, and redaction holds for any signature or key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.errors import ExitCode
from pipeline.ledger import SqliteLedger
from pipeline.redact import redact, register_secret
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from pipeline.sources import csv_reader
from pipeline.sources.readers import LINE_LIMIT_BYTES, SourceOptions, iter_rows
from pipeline.sources.rows import FileSpec, JobSettings, Rejection
from tests.support.audio import write_wav
from tests.support.runs import assert_exactly_once, run_cli


class Corpus:
    """Good files and the (source, line) of every row that must be rejected, with a phrase."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.good: list[Path] = []
        self.bad: list[tuple[str, int | None, str]] = []
        self._n = 0

    def wav(self, name: str) -> Path:
        self._n += 1
        path = write_wav(self.root / name, freq=200.0 + 37 * self._n)
        self.good.append(path)
        return path

    def expect(self, source: Path | str, line: int | None, phrase: str) -> None:
        self.bad.append((str(source), line, phrase))


def _csv_manifest(c: Corpus) -> Path:
    d = c.root / "csv"
    d.mkdir()
    manifest = d / "corpus.csv"
    deep = "[" * 50_000 + "]" * 50_000
    for name in ("g0.wav", "g2.wav", "sub/g6.wav", "g10.wav", "é-ünïcødé 🎧 ‮.wav", "g11.wav"):
        c.wav(f"csv/{name}")
    os.symlink("loop.wav", d / "loop.wav")
    os.mkfifo(d / "fifo.wav")
    rows: list[bytes] = [
        "\ufeffpath,language,metadata,tags,job_id\n".encode(),  # 1: BOM
        b"g0.wav,en,,,\n",  # 2
        b'"g1.wav,en,,,\n',  # 3: a quote opened and never closed
        b"g2.wav,,,,\n",  # 4: swallowed by line 3, read again
        b"g3.wav,fran\xe7ais,,,\n",  # 5: Latin-1, not UTF-8
        b"g4.wav\x00,en,,,\n",  # 6: NUL byte
        b"g5.wav,en,," + b"x" * (LINE_LIMIT_BYTES + 10) + b",\n",  # 7: an enormous line
        b"g5.wav," + b"y" * 200_000 + b",,,\n",  # 8: an enormous cell (over csv's field limit)
        b"../../../../../../etc/passwd,,,,\n",  # 9: `..` out of the folder, not audio
        b"sub/../sub/g6.wav,,,,\n",  # 10: `..` that stays inside: fine
        f'g7.wav,en,"{deep}",,\n'.encode(),  # 11: JSON nested 50 000 deep
        b"a\x07b\x1b[31m.wav,,,,\n",  # 12: control characters
        "\u202eevil\u200b.wav,,,,\n".encode(),  # 13: bidi override, zero-width space
        b"loop.wav,,,,\n",  # 14: a symlink loop
        b"fifo.wav,,,,\n",  # 15: a FIFO (must not block)
        b"/dev/null,,,,\n",  # 16: a device
        b"/dev/zero,,,,\n",  # 17: a device that never ends
        b"g10.wav,,,,bad/../id\n",  # 18: a job_id with a path in it
        b'g10.wav,en,,"a,b",\n',  # 19: good
        "é-ünïcødé 🎧 ‮.wav,,,,\n".encode(),  # 20: odd but real file name: good
        b'g11.wav,en,"{""k"": 1}",,\n',  # 21: good, quoted JSON
        b'g12.wav,en,"{""k"": }",,\n',  # 22: malformed JSON
    ]
    manifest.write_bytes(b"".join(rows))
    for line, phrase in [
        (3, "unbalanced quote"),
        (5, "invalid UTF-8"),
        (6, "NUL byte"),
        (7, "line longer than"),
        (8, "field larger than field limit"),
        (9, "no file extension"),
        (11, "nested too deeply"),
        (12, "\\x07b\\x1b[31m.wav: file not found"),
        (13, "\\u202eevil\\u200b.wav: file not found"),
        (14, "too many levels of symbolic links"),
        (15, "not a regular file (a FIFO)"),
        (16, "not a regular file (a character device)"),
        (17, "not a regular file (a character device)"),
        (18, "invalid job_id"),
        (22, "metadata: malformed JSON"),
    ]:
        c.expect(manifest, line, phrase)
    return manifest


def _jsonl_manifest(c: Corpus) -> Path:
    d = c.root / "jsonl"
    d.mkdir()
    manifest = d / "corpus.jsonl"
    for name in ("j0.wav", "j7.wav"):
        c.wav(f"jsonl/{name}")
    lines: list[bytes] = [
        b'{"path": "j0.wav"}',  # 1 good
        b'{"path": 5}',  # 2 a number for a string
        b'{"path": "j1.wav", "job_id": 7}',  # 3
        b'{"path": "j2.wav", "transcription_config": {"language": 5}}',  # 4
        b"[" * 200_000 + b"]" * 200_000,  # 5 deeply nested, under the line limit
        b'{"path": "\\ud800.wav"}',  # 6 a lone surrogate
        b'{"path": "j4.wav", "transcription_config": {"diarization": "loud"}}',  # 7
        b'{"path": "j5.wav"',  # 8 truncated
        b"null",  # 9
        b'{"path": "j5.wav", "unknown": 1}',  # 10
        b'{"path": "j6.wav", "metadata": {"k": NaN}}',  # 11
        b'{"path": "j7.wav", "transcription_config": {"language": "en"}}',  # 12 good
        b'\xff\xfe{"path": "x.wav"}',  # 13 not UTF-8
        b'{"path": ["j7.wav"]}',  # 14
        b'{"path": "j0.wav", "tracking": {"tags": "not-a-list"}}',  # 15
    ]
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    for line, phrase in [
        (2, "path: expected a string, got a number"),
        (3, "job_id: expected a string"),
        (4, "language"),
        (5, "nested too deeply"),
        (6, "lone surrogate"),
        (7, "diarization"),
        (8, "invalid JSON"),
        (9, "expected a JSON object"),
        (10, 'unknown key "unknown"'),
        (11, "NaN is not valid JSON"),
        (13, "invalid UTF-8"),
        (14, "path: expected a string"),
        (15, "tags"),
    ]:
        c.expect(manifest, line, phrase)
    return manifest


def _directory(c: Corpus) -> Path:
    tree = c.root / "tree"
    (tree / "sub").mkdir(parents=True)
    c.wav("tree/a.wav")
    c.wav("tree/sub/b.wav")
    os.symlink(".", tree / "sub" / "loop")  # a directory loop
    os.symlink("self.wav", tree / "self.wav")
    os.symlink("nowhere.wav", tree / "dangling.wav")
    os.mkfifo(tree / "p.wav")
    (tree / "empty.wav").write_bytes(b"")
    (tree / "notes.txt").write_text("not audio, skipped by the walk")
    for name, phrase in [
        ("p.wav", "not a regular file (a FIFO)"),
        ("self.wav", "too many levels of symbolic links"),
        ("dangling.wav", "broken symbolic link"),
        ("empty.wav", "empty file"),
    ]:
        c.expect(tree, None, f"{tree / name}: {phrase}")
    return tree


def _stdin(c: Corpus) -> str:
    s0 = c.wav("stdin/s0.wav")
    c.expect("-", 2, "path: expected a string")
    c.expect("-", 3, "file not found")
    c.expect("-", 4, "NUL byte")
    return f'{s0}\n{{"path": 5}}\n{c.root}/stdin/nope.wav\n{c.root}/stdin/a\x00b.wav\n'


def test_hostile_corpus_through_the_cli(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    c = Corpus(tmp_path)
    csv_manifest, jsonl_manifest, tree = _csv_manifest(c), _jsonl_manifest(c), _directory(c)
    stdin = _stdin(c)
    ledger = tmp_path / "l.db"
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}

    result = run_cli(
        "submit",
        str(csv_manifest),
        str(jsonl_manifest),
        str(tree),
        "-",
        "--ledger",
        str(ledger),
        "--follow-symlinks",
        "--progress",
        "none",
        env=env,
        stdin=stdin,
        cwd=tmp_path,
    )

    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.REJECTED, output[-3000:]
    assert "Traceback" not in output
    assert_exactly_once(sandbox_thread, c.good)  # every good row created, once, byte-exact
    rejected = {(source, line): reason for source, line, _path, reason in SqliteLedger(ledger).rejections()}
    messages = [line for line in result.stderr.splitlines() if "rejected: " in line]
    for source, line, phrase in c.bad:
        where = f"{source}:{line}: " if line is not None else f"{source}: "
        hits = [m for m in messages if where in m and phrase in m]
        assert len(hits) == 1, f"expected one rejection at {where} saying {phrase!r}"
        if line is not None:
            assert (source, line) in rejected
    assert len(messages) == len(c.bad), "\n".join(messages)  # nothing else rejected, nothing lost
    for message in messages:  # one clean line each: no raw control characters reach the terminal
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e\u200b]", message), repr(message)
        assert len(message) < 1000


# --- files that change between validation and upload ----------------------------------------------


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the sandbox")


@pytest.fixture
def holding_sandbox() -> Iterator[Sandbox]:
    """Every presign and every PUT is held 1.5 s: time for the test to change files under the run."""
    plan = FaultPlan.model_validate(
        {"operations": {"presign": {"latency": {"fixed_ms": 1500}}, "put": {"latency": {"fixed_ms": 1500}}}}
    )
    with Sandbox(SandboxConfig(job_step_seconds=0.05, faults=plan)).run_in_thread() as sb:
        yield sb


@pytest.mark.slow
def test_files_deleted_truncated_or_grown_between_validation_and_upload(
    holding_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = holding_sandbox
    files = {
        name: write_wav(tmp_path / "in" / f"{name}.wav", seconds=0.1, freq=300 + i * 50)
        for i, name in enumerate(["keep1", "keep2", "gone_before", "gone_during", "cut", "grown"])
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLNG_")}
    env.update({"SLNG_API_KEY": sb.api_key, "SLNG_BULK_API_URL": sb.api_url})
    command = [
        sys.executable,
        "-m",
        "pipeline.cli.app",
        "submit",
        str(tmp_path / "in"),
        "--ledger",
        str(tmp_path / "l.db"),
        "--progress",
        "none",
        "--concurrency",
        "8",
    ]
    with subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:

        def held(op: str) -> int:
            return sb.stats().injected_by_operation.get(op, {}).get("latency", 0)

        # Every file was listed and validated; presigns are held: delete one before its upload.
        _wait_for(lambda: held("presign") >= len(files))
        files["gone_before"].unlink()
        # The PUTs are held (bodies sent, answers pending): change three more under the upload.
        _wait_for(lambda: held("put") >= len(files) - 1)
        files["gone_during"].unlink()
        with files["cut"].open("r+b") as f:
            f.truncate(100)
        with files["grown"].open("ab") as f:
            f.write(b"\0" * 1000)
        stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == ExitCode.FAILED, stderr
    assert "Traceback" not in stdout + stderr
    assert "gone_before.wav: file disappeared before upload" in stderr
    assert "gone_during.wav: file disappeared before upload finished" in stderr
    assert "cut.wav: file changed since it was listed" in stderr
    assert "grown.wav: file changed since it was listed" in stderr
    assert "changed during upload" in stderr and re.search(r"changed during upload\s+4", stderr)
    created = {job.job_id for job in sb.jobs().jobs}
    assert len(created) == 2  # the two untouched files, and only them
    ledger = SqliteLedger(tmp_path / "l.db")
    states = {Path(r.path).stem: (r.state.value, r.error_class) for r in ledger.records(None)}
    assert states["keep1"][0] == states["keep2"][0] == "created"
    for name in ("gone_before", "gone_during", "cut", "grown"):
        assert states[name] == ("failed", "changed"), states


# --- properties ------------------------------------------------------------------------------------

GOOD_FILES = 3
_garbage_line = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" "))


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("good")
    for i in range(GOOD_FILES):
        write_wav(d / f"g{i}.wav", freq=300 + 10 * i)
    return d


def _rows(path: Path) -> list[FileSpec | Rejection]:
    return list(
        iter_rows([str(path)], JobSettings.model_validate({"transcription_config": {}}), SourceOptions())
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.integers(0, GOOD_FILES - 1), _garbage_line), max_size=25))
def test_csv_garbage_never_costs_a_good_row(good_dir: Path, lines: list[int | bytes]) -> None:
    """Whatever bytes sit between them (stray quotes, NULs, bad UTF-8, commas), every good row is read
    at its own line, and every other row is at most one rejection that names a real line."""
    body = [b"path,language\n"] + [
        f"{good_dir}/g{item}.wav,en\n".encode() if isinstance(item, int) else item + b"\n" for item in lines
    ]
    manifest = good_dir / "m.csv"
    manifest.write_bytes(b"".join(body))
    rows = _rows(manifest)
    specs = {row.line for row in rows if isinstance(row, FileSpec)}
    expected_good = {i + 2 for i, item in enumerate(lines) if isinstance(item, int)}
    assert expected_good <= specs
    for row in rows:
        assert row.line is not None and 2 <= row.line <= len(lines) + 1
    lines_reported = [row.line for row in rows]
    assert len(lines_reported) == len(set(lines_reported))  # one row per line at most


_good_marker = st.integers(0, GOOD_FILES - 1).map(lambda i: ("GOOD", i))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(_good_marker, _json_values, _garbage_line), max_size=20))
def test_jsonl_any_value_or_garbage_is_one_rejection_and_good_rows_survive(
    good_dir: Path, lines: list[object]
) -> None:
    body: list[bytes] = []
    for item in lines:
        if isinstance(item, tuple):
            body.append(json.dumps({"path": f"{good_dir}/g{item[1]}.wav"}).encode())
        elif isinstance(item, bytes):
            body.append(item)
        else:
            body.append(json.dumps(item).encode())
    manifest = good_dir / "m.jsonl"
    manifest.write_bytes(b"\n".join(body) + b"\n")
    rows = _rows(manifest)
    good_lines = {i + 1 for i, item in enumerate(lines) if isinstance(item, tuple)}
    assert good_lines <= {row.line for row in rows if isinstance(row, FileSpec)}
    for row in rows:
        assert row.line is not None and 1 <= row.line <= len(lines)
        if isinstance(row, Rejection):
            assert "\n" not in row.message()


_SIG = st.text("0123456789abcdef", min_size=64, max_size=64)
_CRED = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=20)


@settings(max_examples=300, deadline=None)
@given(signature=_SIG, access_key=_CRED, before=st.text(max_size=40), after=st.text(max_size=40))
def test_redaction_removes_any_signature_in_any_spelling(
    signature: str, access_key: str, before: str, after: str
) -> None:
    assume(signature not in before + after and access_key not in before + after)
    credential = f"{access_key}/20260101/us-east-1/s3/aws4_request"
    url = (
        "https://bucket.s3.amazonaws.com/inputs/x.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={quote(credential, safe='')}&X-Amz-Date=20260101T000000Z"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
    )
    for text in (
        f"{before}{url}{after}",
        json.dumps({"url": url, "note": before}),
        repr({"X-Amz-Signature": signature, "X-Amz-Credential": credential}),
        f"{before}https://proxy/?target={quote(url, safe='')}{after}",
        f"Authorization: AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature={signature}",
        f"<Error><SignatureProvided>{signature}</SignatureProvided><AWSAccessKeyId>{access_key}</AWSAccessKeyId>",
    ):
        cleaned = redact(text)
        assert signature not in cleaned, text
        assert access_key not in cleaned, text


@settings(max_examples=200, deadline=None)
@given(key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40))
def test_a_registered_key_never_survives_in_any_spelling(key: str) -> None:
    secret = "sk-" + key
    register_secret(secret)
    for text in (
        f"Bearer {secret}",
        f"key={secret};",
        json.dumps({"key": secret}),
        repr(secret),
        quote(secret, safe=""),
        f"x{secret}{secret}y",
    ):
        assert secret not in redact(text), text


def _summary(rows: list[FileSpec | Rejection]) -> list[tuple[object, ...]]:
    return [
        (row.line, row.path_text, row.settings.settings_hash())
        if isinstance(row, FileSpec)
        else (row.line, row.message())
        for row in rows
    ]


_csv_line = st.one_of(
    st.integers(0, GOOD_FILES - 1),
    _garbage_line,
    st.sampled_from(
        [b'"', b'a,"b', b'"x\r', b"\r", b"\0", b"\xff", b",,", b"  ", b"", b"x,y,z", b"\xef\xbb\xbf"]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_csv_line, max_size=40), block=st.integers(1, 400), crlf=st.booleans())
def test_csv_plain_blocks_read_like_the_careful_path(
    good_dir: Path, lines: list[int | bytes], block: int, crlf: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of plain lines are parsed as a list; whatever sits in or across a block (a quote that
    runs on, a damaged line, a block boundary inside a line), the rows are the ones the careful,
    line-by-line path gives: the same lines, the same files, the same messages."""
    end = b"\r\n" if crlf else b"\n"
    body = [b"path,language" + end] + [
        f"{good_dir}/g{item}.wav,{'fr' if item % 2 else 'en'}".encode() + end
        if isinstance(item, int)
        else item + end
        for item in lines
    ]
    manifest = good_dir / "blocks.csv"
    manifest.write_bytes(b"".join(body))
    with monkeypatch.context() as patch:
        patch.setattr(csv_reader, "_plain_block", lambda handle: (handle.read(), None))
        careful = _summary(_rows(manifest))
    with monkeypatch.context() as patch:
        patch.setattr(csv_reader, "PLAIN_BLOCK_BYTES", block)
        assert _summary(_rows(manifest)) == careful
