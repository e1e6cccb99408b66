"""Turn manifests, directories and stdin into validated rows, lazily and in bounded memory.

Every row is checked locally (file exists, is a readable non-empty regular audio file under the
size limit; settings and job_id valid) before the runner makes any remote call, and a bad row is
a `Rejection` that never stops the iteration. Only a whole-source problem found before the first
row (missing source, bad CSV header) raises `ManifestError`.

Source kinds: `*.csv` (header row, one file per record), `*.jsonl` / `*.ndjson` (one object per
line, API-shaped settings), a directory (recursive walk), `-` (stdin: a path or a JSON object per
line) and, as a convenience, a single audio file.

Manifest lines are read as bytes and decoded one line at a time, so invalid UTF-8, NUL bytes or a
line over 1 MiB reject that row only (for CSV too: a damaged line rejects the record it belongs to).
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TextIO

from pydantic import ValidationError

from pipeline.api.models import AUDIO_EXTENSIONS, MAX_FILE_BYTES, is_valid_job_id
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row, escape_control

__all__ = [
    "CSV_COLUMNS",
    "JSONL_KEYS",
    "LINE_LIMIT_BYTES",
    "ManifestError",
    "SourceOptions",
    "check_sources",
    "iter_rows",
]

LINE_LIMIT_BYTES: Final = 1 << 20  # a longer manifest line is rejected, not buffered
_SETTINGS_CACHE_SIZE: Final = 4096
_QUOTE_CHARS: Final = 80
_BOM: Final = b"\xef\xbb\xbf"

# CSV settings columns and where each lands in the JobSettings structure.
_CSV_SETTING_LOCS: Final[dict[str, tuple[str, ...]]] = {
    "language": ("transcription_config", "language"),
    "operating_point": ("transcription_config", "operating_point"),
    "diarization": ("transcription_config", "diarization"),
    "domain": ("transcription_config", "domain"),
    "output_locale": ("transcription_config", "output_locale"),
    "enable_entities": ("transcription_config", "enable_entities"),
    "additional_vocab": ("transcription_config", "additional_vocab"),
    "title": ("tracking", "title"),
    "reference": ("tracking", "reference"),
    "tags": ("tracking", "tags"),
    "details": ("tracking", "details"),
    "metadata": ("metadata",),
    "model_code": ("model_code",),
    "srt_max_line_length": ("output_config", "srt_overrides", "max_line_length"),
    "srt_max_lines": ("output_config", "srt_overrides", "max_lines"),
}
CSV_COLUMNS: Final = ("path", "job_id", *_CSV_SETTING_LOCS)
_SETTINGS_KEYS: Final = ("transcription_config", "tracking", "output_config", "metadata", "model_code")
JSONL_KEYS: Final = ("path", "job_id", *_SETTINGS_KEYS)
_JSONL_KEY_SET: Final = frozenset(JSONL_KEYS)
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})
_SUPPORTED: Final = ", ".join(sorted(AUDIO_EXTENSIONS))


@dataclass(frozen=True)
class SourceOptions:
    """How sources are read; the include/exclude globs and symlink policy apply to directory walks."""

    include: tuple[str, ...] = ()  # any match includes (none given: everything)
    exclude: tuple[str, ...] = ()  # any match excludes; also prunes matching directories
    follow_symlinks: bool = False
    max_file_bytes: int = MAX_FILE_BYTES
    stdin: TextIO | None = None  # for "-"; default: sys.stdin (read as bytes)


class ManifestError(Exception):
    """A whole source is unusable (missing, unreadable, bad CSV header); the message names it."""


class _RowError(Exception):
    """A row-level problem; its message is the Rejection reason."""


# --- small helpers ---------------------------------------------------------------------------------


def _quote(value: object) -> str:
    """Quote a user value for a reason: strings repr'd (escapes controls), others as JSON; truncated."""
    if not isinstance(value, str):
        text = json.dumps(value, default=str)
        return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "..."
    if len(value) > _QUOTE_CHARS:
        return repr(value[:_QUOTE_CHARS]) + "..."
    return repr(value)


def _reject(source: str, line: int | None, path: str | None, reason: str) -> Rejection:
    """Rejection whose reason is safe to log as is (the path is escaped by Rejection.message).

    A source or path holding surrogates (undecodable file-name bytes, or a JSON "\\ud800") cannot
    be stored as UTF-8 text (the ledger would fail on it): those are kept in their escaped spelling.
    """
    if path is not None and _has_surrogates(path):
        path = escape_control(path)
    if _has_surrogates(source):
        source = escape_control(source)
    return Rejection(source, line, path, escape_control(reason))


def _manifest_error(source: str, problem: str) -> ManifestError:
    return ManifestError(escape_control(f"{source}: {problem}"))


def _os_reason(exc: OSError) -> str:
    """Short reason for a failed stat/open, without the path (the Rejection carries it)."""
    code = exc.errno
    if code == errno.ENOENT:
        return "file not found"
    if code == errno.ENOTDIR:
        return "file not found (a parent is not a directory)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ELOOP:
        return "too many levels of symbolic links"
    if code == errno.ENAMETOOLONG:
        return "path too long"
    return exc.strerror or type(exc).__name__


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_file(path: str, max_bytes: int) -> os.stat_result | str:
    """Stat (never open) the file; the stat result if it is uploadable, else the reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return _os_reason(exc)
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no file can have that name
        return "path is not valid Unicode (a lone surrogate)"
    except ValueError:  # embedded NUL
        return "path contains a NUL byte"
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            return "is a directory"
        return f"not a regular file ({_kind_of(mode)})"
    ext = os.path.splitext(path)[1]
    if ext[1:].lower() not in AUDIO_EXTENSIONS:
        what = f"unsupported extension {_quote(ext)}" if ext else "no file extension"
        return f"{what} (supported: {_SUPPORTED})"
    size = st.st_size
    if size == 0:
        return "empty file (0 bytes)"
    if size > max_bytes:
        return f"file too large ({size} bytes, limit {max_bytes})"
    if not os.access(path, os.R_OK):
        return "permission denied (not readable)"
    return st


def _relative_to(path: str, prefix: str) -> str:
    """Path relative to a root (prefix = root + sep), else the absolute path without its leading '/'."""
    rel = path[len(prefix) :] if path.startswith(prefix) else path.lstrip(os.sep)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


def _root_prefix(root: str) -> str:
    return root if root.endswith(os.sep) else root + os.sep


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# --- reading lines ----------------------------------------------------------------------------------

_Line = tuple[int, str, str | None]  # (line number, text, problem or None)


def _binary_lines(stream: IO[bytes]) -> Iterator[_Line]:
    """Physical lines, capped at LINE_LIMIT_BYTES and decoded one by one.

    A damaged line still yields text (replacement characters, NUL removed, or just a newline if
    it was too long) so a CSV parser keeps its structure; the problem travels beside it.
    """
    lineno = 0
    readline = stream.readline
    while True:
        raw = readline(LINE_LIMIT_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if len(raw) > LINE_LIMIT_BYTES:
            while not raw.endswith(b"\n"):  # drain the rest of the line in bounded chunks
                raw = readline(1 << 16)
                if not raw:
                    break
            yield lineno, "\n", f"line longer than {LINE_LIMIT_BYTES} bytes"
            continue
        problem = None
        if b"\0" in raw:
            problem = "NUL byte in line"
            raw = raw.replace(b"\0", b"")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = problem or f"invalid UTF-8 (byte {exc.start + 1} of the line)"
            text = raw.decode("utf-8", "replace")
        yield lineno, text, problem


def _text_lines(stream: IO[str]) -> Iterator[_Line]:
    """Same contract as _binary_lines for an already-decoded stream (limit counted in characters)."""
    lineno = 0
    readline = stream.readline
    while True:
        text = readline(LINE_LIMIT_BYTES + 1)
        if not text:
            return
        lineno += 1
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if len(text) > LINE_LIMIT_BYTES:
            while not text.endswith("\n"):
                text = readline(1 << 16)
                if not text:
                    break
            yield lineno, "\n", f"line longer than {LINE_LIMIT_BYTES} characters"
            continue
        problem = None
        if "\0" in text:
            problem = "NUL byte in line"
            text = text.replace("\0", "")
        if _has_surrogates(text):  # undecodable bytes smuggled in by surrogateescape
            problem = problem or "invalid UTF-8"
            text = text.encode("utf-8", "replace").decode("utf-8")
        yield lineno, text, problem


# --- settings -----------------------------------------------------------------------------------------


def _loads(text: str, what: str) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise _RowError(f"{what}: malformed JSON ({exc.msg} at character {exc.pos + 1})") from None
    except ValueError as exc:
        raise _RowError(f"{what}: malformed JSON ({exc})") from None
    except RecursionError:
        raise _RowError(f"{what}: JSON nested too deeply") from None


def _loc_suffix(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _loc_name(loc: tuple[int | str, ...]) -> str:
    """Dotted field name for a pydantic error location, e.g. "transcription_config.diarization"."""
    return str(loc[0]) + _loc_suffix(loc[1:]) if loc else ""


def _csv_column_for(loc: tuple[int | str, ...]) -> str:
    """The CSV column a pydantic error location came from, e.g. "srt_max_lines" or "tags[0]"."""
    for column, target in _CSV_SETTING_LOCS.items():
        if loc[: len(target)] == target:
            return column + _loc_suffix(loc[len(target) :])
    return _loc_name(loc)


def _validation_reason(exc: ValidationError, name: Callable[[tuple[int | str, ...]], str]) -> str:
    """First pydantic error as one short line that names the field (and the allowed values)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    field = name(tuple(err["loc"])) or "settings"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        text = f"{field}: unknown key"
    elif kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        text = f"{field}: invalid value {_quote(value)} (allowed: {expected})"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        text = f"{field}: {msg[:1].lower()}{msg[1:]}"
        if kind != "value_error" and isinstance(value, str | int | float | bool):
            text += f" (got {_quote(value)})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def _csv_value(column: str, cell: str) -> Any:
    """Convert one non-empty CSV cell to the type its API field wants."""
    if column == "enable_entities":
        low = cell.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _RowError(f"enable_entities: expected true/false/1/0/yes/no, got {_quote(cell)}")
    if column == "additional_vocab":
        value = _loads(cell, column)
        if not isinstance(value, list):
            raise _RowError("additional_vocab: expected a JSON array")
        return value
    if column == "metadata":
        value = _loads(cell, column)
        if not isinstance(value, dict):
            raise _RowError("metadata: expected a JSON object")
        return value
    if column == "tags":
        if cell.startswith("["):
            value = _loads(cell, column)
            if not isinstance(value, list):
                raise _RowError("tags: expected a JSON list or ';'-separated text")
            return value
        return [tag for tag in (t.strip() for t in cell.split(";")) if tag]
    return cell


def _csv_settings(names: Sequence[str], cells: Sequence[str], defaults: JobSettings) -> JobSettings:
    data: dict[str, Any] = {"transcription_config": {}}
    for column, cell in zip(names, cells, strict=True):
        if not cell:
            continue
        *parents, leaf = _CSV_SETTING_LOCS[column]
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = _csv_value(column, cell)
    try:
        row = JobSettings.model_validate(data)
    except ValidationError as exc:
        raise _RowError(_validation_reason(exc, _csv_column_for)) from None
    return row.merged_over(defaults)


def _json_settings(data: dict[str, Any], defaults: JobSettings) -> JobSettings:
    try:
        row = JobSettings.model_validate({"transcription_config": {}, **data})
    except ValidationError as exc:
        raise _RowError(_validation_reason(exc, _loc_name)) from None
    return row.merged_over(defaults)


class _SettingsCache:
    """Bounded memo of row settings: a million rows saying `language=fr` share one JobSettings."""

    def __init__(self, defaults: JobSettings) -> None:
        self.defaults = defaults
        self._memo: dict[object, JobSettings | str] = {}

    def get(self, key: object, build: Callable[..., JobSettings], *args: Any) -> JobSettings | str:
        """Merged settings for this key, or the rejection reason (bad settings are memoised too)."""
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = build(*args)
            except _RowError as exc:
                hit = str(exc)
            if len(self._memo) >= _SETTINGS_CACHE_SIZE:
                del self._memo[next(iter(self._memo))]  # oldest first: cheap FIFO bound
            self._memo[key] = hit
        return hit


# --- rows -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """Per-source constants shared by every row of that source."""

    source: str
    root: str  # absolute folder that relative paths resolve against
    prefix: str  # root + separator, for relative_path
    max_bytes: int
    cache: _SettingsCache


def _file_row(
    ctx: _Context, line: int | None, path_cell: str, job_id: str | None, settings: JobSettings | str
) -> Row:
    """Resolve and check one manifest/stdin path; `settings` is a str when they were rejected.

    Checks run cheapest first and the file is only stat()ed, never opened (a FIFO would block).
    """
    if not path_cell:
        return _reject(ctx.source, line, None, "missing path")
    if "\0" in path_cell:
        return _reject(ctx.source, line, None, f"path contains a NUL byte: {_quote(path_cell)}")
    path = os.path.normpath(os.path.join(ctx.root, path_cell))
    if job_id is not None and not is_valid_job_id(job_id):
        return _reject(
            ctx.source, line, path, f"invalid job_id {_quote(job_id)}: use 1-128 letters and digits"
        )
    if isinstance(settings, str):
        return _reject(ctx.source, line, path, settings)
    checked = _check_file(path, ctx.max_bytes)
    if isinstance(checked, str):
        return _reject(ctx.source, line, path, checked)
    return FileSpec(
        source=ctx.source,
        line=line,
        path=Path(path),
        size=checked.st_size,
        mtime_ns=checked.st_mtime_ns,
        job_id=job_id,
        settings=settings,
        relative_path=_relative_to(path, ctx.prefix),
    )


def _json_row(ctx: _Context, line: int, text: str) -> Row:
    """One JSONL object (also used for `{...}` lines on stdin)."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return _reject(ctx.source, line, None, f"invalid JSON ({exc.msg} at character {exc.pos + 1})")
    except ValueError as exc:
        return _reject(ctx.source, line, None, f"invalid JSON ({exc})")
    except RecursionError:
        return _reject(ctx.source, line, None, "invalid JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return _reject(ctx.source, line, None, f"expected a JSON object, got {_json_type(obj)}")
    unknown = [key for key in obj if key not in _JSONL_KEY_SET]
    path_cell = obj.get("path")
    if path_cell is not None and not isinstance(path_cell, str):
        return _reject(ctx.source, line, None, f"path: expected a string, got {_json_type(path_cell)}")
    path_text = path_cell or ""  # exact: JSON can express leading/trailing spaces
    display = (
        os.path.normpath(os.path.join(ctx.root, path_text)) if path_text and "\0" not in path_text else None
    )
    if unknown:
        allowed = ", ".join(JSONL_KEYS)
        return _reject(ctx.source, line, display, f"unknown key {_quote(unknown[0])} (allowed: {allowed})")
    job_id = obj.get("job_id")
    if job_id is not None and not isinstance(job_id, str):
        return _reject(ctx.source, line, display, f"job_id: expected a string, got {_json_type(job_id)}")
    data = {key: obj[key] for key in _SETTINGS_KEYS if obj.get(key) is not None}
    cache = ctx.cache
    if not data:
        return _file_row(ctx, line, path_text, job_id, cache.defaults)
    key = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return _file_row(ctx, line, path_text, job_id, cache.get(key, _json_settings, data, cache.defaults))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"


# --- sources ------------------------------------------------------------------------------------------------


def _classify(source: str) -> tuple[str, os.stat_result | None]:
    """Which reader a source needs, or ManifestError if it is unusable as a whole."""
    if source == "-":
        return "stdin", None
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise _manifest_error(source, "no such file or directory") from None
    except OSError as exc:
        raise _manifest_error(source, _os_reason(exc)) from None
    except ValueError:
        raise _manifest_error(source, "path contains a NUL byte") from None
    if stat.S_ISDIR(st.st_mode):
        return "dir", st
    low = source.lower()
    if low.endswith(".csv"):
        return "csv", st
    if low.endswith((".jsonl", ".ndjson")):
        return "jsonl", st
    if os.path.splitext(low)[1][1:] in AUDIO_EXTENSIONS:
        return "file", st
    raise _manifest_error(source, "not a manifest (.csv, .jsonl, .ndjson), a directory or an audio file")


def _open_manifest(source: str) -> IO[bytes]:
    try:
        return open(source, "rb")  # closed by the caller's `with`
    except OSError as exc:
        raise _manifest_error(source, f"cannot open manifest: {_os_reason(exc)}") from None


@dataclass
class _CsvHeader:
    names: list[str]
    path_index: int
    job_index: int | None
    setting_indexes: list[int]
    setting_names: list[str]


def _parse_header(source: str, record: list[str]) -> _CsvHeader:
    names = [cell.strip().lower() for cell in record]
    seen: set[str] = set()
    for position, name in enumerate(names, 1):
        if not name:
            raise _manifest_error(source, f"CSV header: column {position} has no name")
        if name in seen:
            raise _manifest_error(source, f"CSV header: duplicate column {_quote(name)}")
        if name not in CSV_COLUMNS:
            allowed = ", ".join(CSV_COLUMNS)
            raise _manifest_error(source, f"CSV header: unknown column {_quote(name)} (allowed: {allowed})")
        seen.add(name)
    if "path" not in seen:
        raise _manifest_error(source, "CSV header: required column 'path' is missing")
    settings = [i for i, name in enumerate(names) if name in _CSV_SETTING_LOCS]
    return _CsvHeader(
        names=names,
        path_index=names.index("path"),
        job_index=names.index("job_id") if "job_id" in seen else None,
        setting_indexes=settings,
        setting_names=[names[i] for i in settings],
    )


class _CsvStream:
    """Feeds csv.reader one physical line at a time and keeps the lines of the record being read.

    A stray quote makes csv.reader run one field over every line up to the next quote, possibly
    the end of the file. Such a record can be handed back (`give_back`): its first line is rejected
    and the lines after it are read again, so one bad quote costs one row, not the rest of the file.
    csv.reader never reads ahead of the record it returns, so lines can be pushed back in between;
    this is an iterator object, not a generator, so it can go on after having reported the end.
    """

    def __init__(self, lines: Iterator[_Line]) -> None:
        self._lines = lines
        self._pushed: list[_Line] = []  # a stack: next line to read last
        self.record: list[_Line] = []  # physical lines of the current record

    def __iter__(self) -> _CsvStream:
        return self

    def __next__(self) -> str:
        item = self._pushed.pop() if self._pushed else next(self._lines)
        self.record.append(item)
        return item[1]

    def start_record(self) -> None:
        self.record = []

    def take_problem(self) -> tuple[int, str] | None:
        """The first damaged line of the current record (line number, problem), if any."""
        return next(((lineno, problem) for lineno, _t, problem in self.record if problem is not None), None)

    def give_back(self, lines: Sequence[_Line]) -> None:
        self._pushed.extend(reversed(lines))


# Free-text columns where a quoted value may legitimately hold line breaks.
_MULTILINE_COLUMNS: Final = frozenset(
    {"title", "reference", "details", "metadata", "additional_vocab", "tags"}
)


def _read_csv_header(source: str, stream: _CsvStream, reader: Iterator[list[str]]) -> _CsvHeader:
    """First non-blank record; a damaged or unparsable header makes the whole manifest unusable."""
    while True:
        stream.start_record()
        try:
            record = next(reader)
        except StopIteration:
            raise _manifest_error(source, "empty manifest (no CSV header row)") from None
        except csv.Error as exc:
            raise _manifest_error(source, f"CSV header: {exc}") from None
        except OSError as exc:
            raise _manifest_error(source, f"cannot read manifest: {_os_reason(exc)}") from None
        problem = stream.take_problem()
        if problem is not None:
            raise _manifest_error(source, f"CSV header (line {problem[0]}): {problem[1]}")
        if len(stream.record) > 1:
            raise _manifest_error(source, "CSV header: a quoted column name runs over several lines")
        if record:
            return _parse_header(source, record)


def _runaway_quote(record: list[str], names: Sequence[str], lines: int) -> bool:
    """A record over several lines that no well-formed row explains: a quote opened and never closed.

    Line breaks are fine in free-text columns; a file name may hold one (a record of two lines);
    anywhere else, or a record of the wrong width, it is a quote that ran away.
    """
    if lines <= 1:
        return False
    if len(record) != len(names):
        return True
    return any(
        ("\n" in cell or "\r" in cell) and name not in _MULTILINE_COLUMNS and (name != "path" or lines > 2)
        for cell, name in zip(record, names, strict=True)
    )


def _csv_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.path.dirname(os.path.abspath(source))
    ctx = _Context(source, root, _root_prefix(root), options.max_file_bytes, _SettingsCache(defaults))
    with _open_manifest(source) as handle:
        stream = _CsvStream(_binary_lines(handle))
        reader = csv.reader(stream)
        header = _read_csv_header(source, stream, reader)
        width = len(header.names)
        path_index, job_index = header.path_index, header.job_index
        setting_indexes, setting_names = header.setting_indexes, header.setting_names
        cache = ctx.cache
        end = max((lineno for lineno, _t, _p in stream.record), default=0)
        while True:
            stream.start_record()
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                lines = stream.record
                start = lines[0][0] if lines else end + 1
                stream.give_back(lines[1:])  # read again whatever the broken record swallowed
                if len(lines) > 1:
                    reason = (
                        f"malformed CSV record: {exc} (unbalanced quote: a quoted field opened on this line"
                        f" runs over {len(lines)} lines; the lines after it are read on their own)"
                    )
                else:
                    reason = f"malformed CSV record: {exc}"
                yield _reject(source, start, None, reason)
                end = start
                continue
            except OSError as exc:
                yield _reject(source, end + 1, None, f"cannot read manifest: {_os_reason(exc)}")
                return
            lines = stream.record
            start, end = lines[0][0], lines[-1][0]
            if _runaway_quote(record, header.names, len(lines)):
                stream.give_back(lines[1:])
                end = start
                yield _reject(
                    source,
                    start,
                    None,
                    f"unbalanced quote: a quoted field opened on this line runs over {len(lines)} lines"
                    " (the lines after it are read on their own)",
                )
                continue
            problem = stream.take_problem()
            if problem is not None:
                yield _reject(source, problem[0], None, problem[1])
                continue
            if not record:
                continue  # blank line
            if len(record) != width:
                if len(record) == 1 and not record[0].strip():
                    continue  # whitespace-only line
                yield _reject(source, start, None, f"expected {width} fields, got {len(record)}")
                continue
            path_cell = record[path_index].strip()
            if not path_cell and not any(cell.strip() for cell in record):
                continue  # ",,," rows that spreadsheets leave at the end
            job_id = (record[job_index].strip() or None) if job_index is not None else None
            cells = tuple(record[i].strip() for i in setting_indexes)
            settings: JobSettings | str = defaults
            if any(cells):
                settings = cache.get(cells, _csv_settings, setting_names, cells, defaults)
            yield _file_row(ctx, start, path_cell, job_id, settings)


def _jsonl_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.path.dirname(os.path.abspath(source))
    ctx = _Context(source, root, _root_prefix(root), options.max_file_bytes, _SettingsCache(defaults))
    with _open_manifest(source) as handle:
        yield from _line_rows(ctx, _binary_lines(handle), allow_paths=False)


def _line_rows(ctx: _Context, lines: Iterator[_Line], *, allow_paths: bool) -> Iterator[Row]:
    """JSONL lines (and, for stdin, plain path lines)."""
    lineno = 0
    try:
        for lineno, text, problem in lines:
            if problem is not None:
                yield _reject(ctx.source, lineno, None, problem)
                continue
            stripped = text.strip()
            if not stripped:
                continue
            if allow_paths and not stripped.startswith("{"):
                yield _file_row(ctx, lineno, stripped, None, ctx.cache.defaults)
            else:
                yield _json_row(ctx, lineno, stripped)
    except OSError as exc:
        yield _reject(ctx.source, lineno + 1, None, f"cannot read: {_os_reason(exc)}")


def _stdin_rows(defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.getcwd()
    ctx = _Context("-", root, _root_prefix(root), options.max_file_bytes, _SettingsCache(defaults))
    if options.stdin is not None:
        lines = _text_lines(options.stdin)
    else:
        buffer = getattr(sys.stdin, "buffer", None)
        lines = _binary_lines(buffer) if buffer is not None else _text_lines(sys.stdin)
    yield from _line_rows(ctx, lines, allow_paths=True)


def _single_file(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    path = os.path.abspath(source)
    checked = _check_file(path, options.max_file_bytes)
    if isinstance(checked, str):
        yield _reject(source, None, path, checked)
        return
    yield FileSpec(
        source, None, Path(path), checked.st_size, checked.st_mtime_ns, None, defaults, os.path.basename(path)
    )


def _compile_globs(patterns: Iterable[str]) -> list[tuple[re.Pattern[str], bool]]:
    """(regex, whole-path-only): a pattern without '/' also matches the bare name, gitignore-style."""
    compiled = []
    for pattern in patterns:
        cleaned = pattern.removeprefix("./").rstrip("/") or pattern
        compiled.append((re.compile(fnmatch.translate(cleaned)), "/" in cleaned))
    return compiled


def _matches(globs: list[tuple[re.Pattern[str], bool]], rel: str, name: str) -> bool:
    return any(rx.match(rel) or (not path_only and rx.match(name)) for rx, path_only in globs)


def _scan_sorted(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _walk_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    """Depth-first walk holding only the sorted entries of the directories on the current path.

    Directories on the current path are tracked by (st_dev, st_ino) so a loop (bind mount, or a
    followed symlink) ends; when following symlinks every visited directory is remembered too,
    so a directory reached through several links is walked once.
    """
    root = os.path.abspath(source)
    try:
        root_stat = os.stat(root)
        top = _scan_sorted(root)
    except OSError as exc:
        raise _manifest_error(source, f"cannot read directory: {_os_reason(exc)}") from None
    include, exclude = _compile_globs(options.include), _compile_globs(options.exclude)
    follow, max_bytes = options.follow_symlinks, options.max_file_bytes
    root_key = (root_stat.st_dev, root_stat.st_ino)
    on_path: set[tuple[int, int]] = {root_key}
    visited: set[tuple[int, int]] = {root_key} if follow else set()
    # Frames: (entries iterator, relative prefix with '/', directory key).
    stack: list[tuple[Iterator[os.DirEntry[str]], str, tuple[int, int]]] = [(iter(top), "", root_key)]
    while stack:
        entries, prefix, dir_key = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            on_path.discard(dir_key)
            continue
        name = entry.name
        if name.startswith("."):
            continue
        rel = prefix + name
        try:
            is_link = entry.is_symlink()
            if is_link and not follow:
                continue
            is_dir = entry.is_dir()
        except OSError:
            is_link, is_dir = False, False
        full = os.path.join(root, rel) if os.sep == "/" else os.path.join(root, *rel.split("/"))
        if is_dir:
            if exclude and _matches(exclude, rel, name):
                continue
            try:
                st = entry.stat()
                key = (st.st_dev, st.st_ino)
                if key in on_path or key in visited:
                    continue  # a loop, or already walked through another link
                children = _scan_sorted(full)
            except FileNotFoundError:
                continue  # removed while we walked: nothing left to upload
            except OSError as exc:
                yield _reject(source, None, full, f"cannot read directory: {_os_reason(exc)}")
                continue
            on_path.add(key)
            if follow:
                visited.add(key)
            stack.append((iter(children), rel + "/", key))
            continue
        if os.path.splitext(name)[1][1:].lower() not in AUDIO_EXTENSIONS:
            continue
        if include and not _matches(include, rel, name):
            continue
        if exclude and _matches(exclude, rel, name):
            continue
        if _has_surrogates(rel):
            yield _reject(source, None, full, "file name is not valid UTF-8")
            continue
        checked = _check_file(full, max_bytes)
        if isinstance(checked, str):
            if is_link and checked == "file not found":
                checked = "broken symbolic link"
            yield _reject(source, None, full, checked)
            continue
        yield FileSpec(source, None, Path(full), checked.st_size, checked.st_mtime_ns, None, defaults, rel)


_READERS: Final[dict[str, Callable[[str, JobSettings, SourceOptions], Iterator[Row]]]] = {
    "csv": _csv_rows,
    "jsonl": _jsonl_rows,
    "dir": _walk_rows,
    "file": _single_file,
}


# --- public API ------------------------------------------------------------------------------------------


def check_sources(sources: Sequence[str], options: SourceOptions | None = None) -> None:
    """Cheap up-front check of every source (exists, readable, CSV header valid), before any upload.

    Reads only CSV headers, and never from a FIFO or stdin, which could be read just once.
    """
    del options  # same checks whatever the options; kept for symmetry with iter_rows
    for source in sources:
        source = os.fspath(source)
        kind, st = _classify(source)
        if kind == "dir":
            if not os.access(source, os.R_OK | os.X_OK):
                raise _manifest_error(source, "cannot read directory: permission denied")
        elif kind in ("csv", "jsonl") and st is not None and stat.S_ISREG(st.st_mode):
            with _open_manifest(source) as handle:
                if kind == "csv":
                    stream = _CsvStream(_binary_lines(handle))
                    _read_csv_header(source, stream, csv.reader(stream))


def iter_rows(
    sources: Sequence[str], defaults: JobSettings, options: SourceOptions | None = None
) -> Iterator[Row]:
    """Lazily yield one FileSpec or Rejection per input row, source after source.

    Rows without settings of their own reuse `defaults` (the same object); rows with settings get
    them merged over `defaults`. Raises ManifestError when a source turns out unusable as a whole.
    """
    opts = options if options is not None else SourceOptions()
    for source in sources:
        source = os.fspath(source)
        kind, _ = _classify(source)
        if kind == "stdin":
            yield from _stdin_rows(defaults, opts)
        else:
            yield from _READERS[kind](source, defaults, opts)
