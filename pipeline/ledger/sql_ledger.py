"""The reads both SQL ledgers make alike, each written once over its backend's dialect.

SQLite and PostgreSQL ask the same questions of the same tables; they differ only in the parameter
mark (`?`, `%s`), in how a column is matched against a list (`IN (?, ...)`, `= ANY(%s)`), and in
the connection a query runs on. A backend supplies those and inherits the queries.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, LiteralString

from pipeline.ledger.base import Ledger
from pipeline.ledger.records import (
    RESUMABLE_STATES,
    FileRecord,
    FileState,
    FileStory,
    Glance,
    HistoryKind,
    Rejected,
    RejectionRecord,
)
from pipeline.ledger.schema import (
    FILE_COLUMNS,
    GLANCE_COLUMNS,
    REJECTION_COLUMNS,
    REPLACED_COLUMNS,
    STORY_COLUMNS,
    record_from_row,
    stories_from_rows,
)

Row = Sequence[Any]
Statement = tuple[LiteralString, Sequence[Any]]

# A dict, not FileState(state) per row: the enum call cost about 1.5 us a row (a rerun looks at all).
_STATES = {state.value: state for state in FileState}


class SqlLedger(Ledger):
    """A ledger over SQL tables (pipeline.ledger.schema's columns): its reads, given the dialect."""

    _mark: ClassVar[LiteralString]
    """The dialect's parameter mark."""

    @abc.abstractmethod
    def _any_of(self, column: LiteralString, values: Sequence[Any]) -> Statement:
        """The condition that `column` is one of `values`, with its parameters."""

    @abc.abstractmethod
    def _rows_for_keys(self, columns: LiteralString, file_keys: Sequence[str]) -> Iterator[Row]:
        """`columns` of the files with these identities (the producer's hot path: chunked lookups
        on the open ledger's reading connection)."""

    @abc.abstractmethod
    def _stream(self, query: LiteralString, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Rows of a query that may be long, streamed; works while the ledger is not open."""

    @abc.abstractmethod
    def _fetch(self, query: LiteralString, params: Sequence[Any] = ()) -> Iterable[Row]:
        """Rows of a short query; works while the ledger is not open."""

    @abc.abstractmethod
    def _read_only(self, statements: Sequence[Statement]) -> Sequence[Sequence[Row]]:
        """Every row of each statement, from one read-only snapshot on a connection of its own."""

    def glance(self, file_keys: Sequence[str]) -> dict[str, Glance]:
        rows = self._rows_for_keys(GLANCE_COLUMNS, file_keys)
        return {
            key: Glance(_STATES[state], error_class, job_id, error, status, settings_hash)
            for key, state, error_class, job_id, error, status, settings_hash in rows
        }

    def records(self, states: Iterable[str] | None = None) -> Iterator[FileRecord]:
        query: LiteralString = "SELECT " + FILE_COLUMNS + " FROM files"
        params: Sequence[Any] = ()
        wanted = list(states or ())
        if wanted:
            where, params = self._any_of("state", wanted)
            query += " WHERE " + where
        for row in self._stream(query + " ORDER BY id", params):
            yield record_from_row(row)

    def rejections(self, run_id: str | None = None) -> Iterator[Rejected]:
        query: LiteralString = "SELECT source, line, path, reason FROM rejections"
        params: tuple[str, ...] = ()
        if run_id is not None:
            query += " WHERE run_id = " + self._mark
            params = (run_id,)
        for row in self._stream(query + " ORDER BY id", params):
            yield Rejected(*row)

    def history_job_ids(self) -> set[str]:
        return {row[0] for row in self._fetch("SELECT job_id FROM job_history")}

    def renewed_not_created(self, kind: HistoryKind) -> list[FileRecord]:
        resumable, params = self._any_of("state", [state.value for state in RESUMABLE_STATES])
        query = (
            "SELECT "
            + FILE_COLUMNS
            + " FROM files WHERE generation > 0 AND "
            + resumable
            + " AND (SELECT h.kind FROM job_history h WHERE h.file_id = files.id"
            " ORDER BY h.id DESC LIMIT 1) = " + self._mark + " ORDER BY id"
        )
        return [record_from_row(row) for row in self._fetch(query, (*params, kind.value))]

    # --- one file's whole story ------------------------------------------------------------------

    def _stories(self, where: LiteralString, params: Sequence[Any]) -> list[FileStory]:
        files, replaced = self._read_only(
            [
                ("SELECT " + STORY_COLUMNS + " FROM files WHERE " + where + " ORDER BY id", params),
                (
                    "SELECT " + REPLACED_COLUMNS + " FROM job_history"
                    " WHERE file_id IN (SELECT id FROM files WHERE " + where + ") ORDER BY id",
                    params,
                ),
            ]
        )
        return stories_from_rows(files, replaced)

    def stories_at(self, paths: Sequence[str]) -> list[FileStory]:
        return self._stories(*self._any_of("path", paths))

    def stories_of_job(self, job_id: str) -> list[FileStory]:
        where = (
            "id IN (SELECT id FROM files WHERE job_id = "
            + self._mark
            + " UNION SELECT file_id FROM job_history WHERE job_id = "
            + self._mark
            + ")"
        )
        return self._stories(where, (job_id, job_id))

    def rejections_at(self, paths: Sequence[str]) -> list[RejectionRecord]:
        where, params = self._any_of("path", paths)
        query = "SELECT " + REJECTION_COLUMNS + " FROM rejections WHERE " + where + " ORDER BY id"
        [rows] = self._read_only([(query, params)])
        return [RejectionRecord(*row) for row in rows]
