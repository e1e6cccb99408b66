"""`GET /v1/batch/jobs`: query-parameter validation, filtering, sorting and pagination."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.api.models import LISTABLE_STATUSES, BatchJob, JobList, PageMeta
from pipeline.sandbox.api_errors import ApiError
from pipeline.sandbox.timeutil import parse_iso, to_ms

SORT_FIELDS = ("submitted_at", "status", "model_code")


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    page_size: int = 20
    statuses: frozenset[str] | None = None
    model_code: str | None = None
    submitted_after: float | None = None
    submitted_before: float | None = None
    sort_by: str = "submitted_at"
    descending: bool = True


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ApiError(400, f"{name} must be an integer {bound}")
    return value


def _datetime(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_iso(raw)
    except ValueError as exc:
        raise ApiError(400, f"Invalid {name}: expected an ISO 8601 date-time") from exc


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    statuses: frozenset[str] | None = None
    if (raw := params.get("status")) is not None:
        values = [v.strip() for v in raw.split(",") if v.strip()]
        bad = [v for v in values if v not in LISTABLE_STATUSES]
        if bad or not values:
            allowed = ", ".join(sorted(LISTABLE_STATUSES))
            raise ApiError(400, f"Invalid status value(s): {', '.join(bad) or raw}. Allowed: {allowed}")
        statuses = frozenset(values)
    sort_by = params.get("sort_by", "submitted_at")
    if sort_by not in SORT_FIELDS:
        raise ApiError(400, f"Invalid sort_by value: {sort_by}. Allowed: {', '.join(sorted(SORT_FIELDS))}")
    sort_order = params.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise ApiError(400, f"Invalid sort_order value: {sort_order}. Allowed: asc, desc")
    return ListQuery(
        page=_int(params, "page", 1, 1, None),
        page_size=_int(params, "page_size", 20, 1, 100),
        statuses=statuses,
        model_code=params.get("model_code"),
        submitted_after=_datetime(params, "submitted_after"),
        submitted_before=_datetime(params, "submitted_before"),
        sort_by=sort_by,
        descending=sort_order == "desc",
    )


def select(jobs: list[tuple[float, int, BatchJob]], query: ListQuery) -> JobList:
    """Filter, sort and page `(submitted_epoch, seq, job)` rows; bounds are inclusive."""
    rows = [
        row
        for row in jobs
        if (query.statuses is None or row[2].status in query.statuses)
        and (query.model_code is None or row[2].model_code == query.model_code)
        and (query.submitted_after is None or to_ms(row[0]) >= to_ms(query.submitted_after))
        and (query.submitted_before is None or to_ms(row[0]) <= to_ms(query.submitted_before))
    ]

    def key(row: tuple[float, int, BatchJob]) -> tuple[str | float, float, int]:
        submitted, seq, job = row
        primary: str | float = (
            submitted if query.sort_by == "submitted_at" else str(getattr(job, query.sort_by))
        )
        return primary, submitted, seq

    rows.sort(key=key, reverse=query.descending)
    start = (query.page - 1) * query.page_size
    items = [job for _, _, job in rows[start : start + query.page_size]]
    total = len(rows)
    meta = PageMeta(
        page=query.page, page_size=query.page_size, total=total, pages=math.ceil(total / query.page_size)
    )
    return JobList(items=items, meta=meta)
