"""CSV manifests: a header row naming the columns, then one file per record.

A stray quote would make csv.reader swallow every line up to the next quote; such a record is
handed back so that one bad quote costs one row, not the rest of the file.
"""

from __future__ import annotations

import csv
import io
import operator
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from pydantic import ValidationError

from pipeline.sources.checks import (
    SourceContext,
    SourceOptions,
    file_row,
    manifest_error,
    open_manifest,
    os_reason,
    path_or_url_row,
    reject,
)
from pipeline.sources.lines import LINE_LIMIT_BYTES, Line, binary_lines
from pipeline.sources.row_settings import (
    RowError,
    loads_json,
    loc_name,
    loc_suffix,
    validation_reason,
)
from pipeline.sources.rows import JobSettings, Row, quote, split_tags

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
    "extra": ("extra",),
    "model_code": ("model_code",),
    "srt_max_line_length": ("output_config", "srt_overrides", "max_line_length"),
    "srt_max_lines": ("output_config", "srt_overrides", "max_lines"),
}
CSV_COLUMNS: Final = ("path", "job_id", *_CSV_SETTING_LOCS, "url")
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


def _csv_column_for(loc: tuple[int | str, ...]) -> str:
    """The CSV column a pydantic error location came from, e.g. "srt_max_lines" or "tags[0]"."""
    for column, target in _CSV_SETTING_LOCS.items():
        if loc[: len(target)] == target:
            return column + loc_suffix(loc[len(target) :])
    return loc_name(loc)


def _csv_value(column: str, cell: str) -> Any:
    """Convert one non-empty CSV cell to the type its API field wants."""
    if column == "enable_entities":
        low = cell.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RowError(f"enable_entities: expected true/false/1/0/yes/no, got {quote(cell)}")
    if column == "additional_vocab":
        value = loads_json(cell, column)
        if not isinstance(value, list):
            raise RowError("additional_vocab: expected a JSON array")
        return value
    if column in ("metadata", "extra"):
        value = loads_json(cell, column)
        if not isinstance(value, dict):
            raise RowError(f"{column}: expected a JSON object")
        return value
    if column == "tags":
        if cell.startswith("["):
            value = loads_json(cell, column)
            if not isinstance(value, list):
                raise RowError("tags: expected a JSON list or comma-separated text")
            return value
        try:
            return split_tags(cell)
        except ValueError as exc:
            raise RowError(str(exc)) from None
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
        raise RowError(validation_reason(exc, _csv_column_for)) from None
    return row.merged_over(defaults)


@dataclass
class _CsvHeader:
    names: list[str]
    path_index: int | None
    url_index: int | None
    job_index: int | None
    setting_indexes: list[int]
    setting_names: list[str]


def _parse_header(source: str, record: list[str]) -> _CsvHeader:
    names = [cell.strip().lower() for cell in record]
    seen: set[str] = set()
    for position, name in enumerate(names, 1):
        if not name:
            raise manifest_error(source, f"CSV header: column {position} has no name")
        if name in seen:
            raise manifest_error(source, f"CSV header: duplicate column {quote(name)}")
        if name not in CSV_COLUMNS:
            allowed = ", ".join(CSV_COLUMNS)
            raise manifest_error(source, f"CSV header: unknown column {quote(name)} (allowed: {allowed})")
        seen.add(name)
    if "path" not in seen and "url" not in seen:
        raise manifest_error(source, "CSV header: required column 'path' (or 'url') is missing")
    settings = [i for i, name in enumerate(names) if name in _CSV_SETTING_LOCS]
    return _CsvHeader(
        names=names,
        path_index=names.index("path") if "path" in seen else None,
        url_index=names.index("url") if "url" in seen else None,
        job_index=names.index("job_id") if "job_id" in seen else None,
        setting_indexes=settings,
        setting_names=[names[i] for i in settings],
    )


class CsvStream:
    """Feeds csv.reader one physical line at a time and keeps the lines of the record being read.

    A stray quote makes csv.reader run one field over every line up to the next quote, possibly
    the end of the file. Such a record can be handed back (`give_back`): its first line is rejected
    and the lines after it are read again, so one bad quote costs one row, not the rest of the file.
    csv.reader never reads ahead of the record it returns, so lines can be pushed back in between;
    this is an iterator object, not a generator, so it can go on after having reported the end.
    """

    def __init__(self, lines: Iterator[Line]) -> None:
        self._lines = lines
        self._pushed: list[Line] = []  # a stack: next line to read last
        self.record: list[Line] = []  # physical lines of the current record

    def __iter__(self) -> CsvStream:
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

    def give_back(self, lines: Sequence[Line]) -> None:
        self._pushed.extend(reversed(lines))

    @property
    def pushed(self) -> bool:
        """Lines handed back and not read again yet."""
        return bool(self._pushed)


# Free-text columns where a quoted value may legitimately hold line breaks.
_MULTILINE_COLUMNS: Final = frozenset(
    {"title", "reference", "details", "metadata", "extra", "additional_vocab", "tags"}
)


def read_csv_header(source: str, stream: CsvStream, reader: Iterator[list[str]]) -> _CsvHeader:
    """First non-blank record; a damaged or unparsable header makes the whole manifest unusable."""
    while True:
        stream.start_record()
        try:
            record = next(reader)
        except StopIteration:
            raise manifest_error(source, "empty manifest (no CSV header row)") from None
        except csv.Error as exc:
            raise manifest_error(source, f"CSV header: {exc}") from None
        except OSError as exc:
            raise manifest_error(source, f"cannot read manifest: {os_reason(exc)}") from None
        problem = stream.take_problem()
        if problem is not None:
            raise manifest_error(source, f"CSV header (line {problem[0]}): {problem[1]}")
        if len(stream.record) > 1:
            raise manifest_error(source, "CSV header: a quoted column name runs over several lines")
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


# The plain path reads blocks of about this many bytes; below csv's field size limit, so no field
# of a plain block can be too large for csv.
PLAIN_BLOCK_BYTES: Final = 64 * 1024


class _Pending:
    """What the careful path reads lines from: bytes the plain path looked at first, then the file."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._held = io.BytesIO()
        self._left = 0  # bytes of _held not read yet

    def hold(self, block: bytes) -> None:
        self._held = io.BytesIO(block)
        self._left = len(block)

    @property
    def drained(self) -> bool:
        return self._left == 0

    def readline(self, size: int = -1, /) -> bytes:
        if not self._left:
            return self._handle.readline(size)
        line = self._held.readline(size)
        self._left -= len(line)
        if self._left or line.endswith(b"\n") or len(line) == size:
            return line
        return line + self._handle.readline(size - len(line) if size > 0 else -1)


def _plain_block(handle: IO[bytes]) -> tuple[bytes, list[str] | None]:
    """The next whole lines of the file, and their text when nothing in them needs the careful path.

    Plain means: no quote (so one record per line), no NUL, no carriage return but in CRLF, valid
    UTF-8, and no line over LINE_LIMIT_BYTES or csv's field size limit. Such lines parse alike read
    one at a time or as a list, so a well-formed manifest skips the per-line bookkeeping.
    """
    block = handle.read(PLAIN_BLOCK_BYTES)
    if not block or block.endswith(b"\n"):
        tail = b""
    else:
        tail = handle.readline(LINE_LIMIT_BYTES + 1)
        block += tail
    last_line = len(block) - (block.rfind(b"\n", 0, len(block) - 1) + 1)
    if (
        not block
        or last_line > min(LINE_LIMIT_BYTES, csv.field_size_limit())
        or b'"' in block
        or b"\0" in block
        or block.count(b"\r") != block.count(b"\r\n")
    ):
        return block, None
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return block, None
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()
    return block, lines


def csv_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    """Rows of a CSV manifest: blocks of plain lines parsed as a list, anything else line by line.

    The careful path (CsvStream, one physical line at a time) takes the header, and any block that
    holds a quote or a damaged line, up to the first record boundary after that block's lines.
    """
    root = os.path.dirname(os.path.abspath(source))
    ctx = SourceContext.under(source, root, options, defaults)
    with open_manifest(source) as handle:
        pending = _Pending(handle)
        stream = CsvStream(binary_lines(pending))
        reader = csv.reader(stream)
        header = read_csv_header(source, stream, reader)
        width = len(header.names)
        path_index, url_index, job_index = header.path_index, header.url_index, header.job_index
        setting_indexes, setting_names = header.setting_indexes, header.setting_names
        cache = ctx.cache
        # The memo is keyed by the raw setting cells (one cell: a str, several: a tuple): a row whose
        # cells were seen before costs one lookup, no stripping (a twentieth of a row).
        pick = operator.itemgetter(*setting_indexes) if setting_indexes else None

        def cell_settings(raw: str | tuple[str, ...]) -> JobSettings:
            cells = (raw.strip(),) if isinstance(raw, str) else tuple(cell.strip() for cell in raw)
            return _csv_settings(setting_names, cells, defaults) if any(cells) else defaults

        def record_row(record: list[str], start: int) -> Row | None:
            """The row of one well-formed record (None for a blank one)."""
            if not record:
                return None  # blank line
            if len(record) != width:
                if len(record) == 1 and not record[0].strip():
                    return None  # whitespace-only line
                return reject(source, start, None, f"expected {width} fields, got {len(record)}")
            path_cell = record[path_index].strip() if path_index is not None else ""
            url_cell = record[url_index].strip() if url_index is not None else ""
            if not path_cell and not url_cell and not any(cell.strip() for cell in record):
                return None  # ",,," rows that spreadsheets leave at the end
            job_id = (record[job_index].strip() or None) if job_index is not None else None
            settings: JobSettings | str = defaults
            if pick is not None:
                raw = pick(record)
                settings = cache.get(raw, cell_settings, raw)
            if url_index is not None:
                return path_or_url_row(ctx, start, path_cell, url_cell, job_id, settings)
            return file_row(ctx, start, path_cell, job_id, settings)

        end = max((lineno for lineno, _t, _p in stream.record), default=0)
        while True:
            while not pending.drained or stream.pushed:
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
                            f"malformed CSV record: {exc} (unbalanced quote: a quoted field opened on this"
                            f" line runs over {len(lines)} lines; the lines after it are read on their own)"
                        )
                    else:
                        reason = f"malformed CSV record: {exc}"
                    yield reject(source, start, None, reason)
                    end = start
                    continue
                except OSError as exc:
                    yield reject(source, end + 1, None, f"cannot read manifest: {os_reason(exc)}")
                    return
                lines = stream.record
                start, end = lines[0][0], lines[-1][0]
                if _runaway_quote(record, header.names, len(lines)):
                    stream.give_back(lines[1:])
                    end = start
                    yield reject(
                        source,
                        start,
                        None,
                        f"unbalanced quote: a quoted field opened on this line runs over {len(lines)} lines"
                        " (the lines after it are read on their own)",
                    )
                    continue
                problem = stream.take_problem()
                if problem is not None:
                    yield reject(source, problem[0], None, problem[1])
                    continue
                row = record_row(record, start)
                if row is not None:
                    yield row
            try:
                block, plain = _plain_block(handle)
            except OSError as exc:
                yield reject(source, end + 1, None, f"cannot read manifest: {os_reason(exc)}")
                return
            if plain is None:
                if not block:
                    return
                pending.hold(block)  # read line by line, from the careful path's next record on
                stream = CsvStream(binary_lines(pending, end))
                reader = csv.reader(stream)
                continue
            records = csv.reader(plain)
            lineno = end
            while True:
                try:
                    for record in records:
                        lineno += 1
                        row = record_row(record, lineno)
                        if row is not None:
                            yield row
                    break
                except csv.Error as exc:  # one record is one line here: the next line is read on its own
                    lineno += 1
                    yield reject(source, lineno, None, f"malformed CSV record: {exc}")
            end += len(plain)
