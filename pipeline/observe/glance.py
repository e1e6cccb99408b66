"""The progress line a person reads at a glance, fitted to the terminal's width.

Fields in the order they are read, each with a rank: when the line does not fit, the least useful
go first (elapsed time, skips, bytes, in flight...), and what stays is never wrapped. The same
fields feed the bar on a terminal (`observe.progress`); no rich here, so it is cheap to test.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.observe.pace import Pace, clock_text, eta_seconds
from pipeline.observe.stats import RunStats, accepted_rates_text, human_bytes, plural

BAR_MIN = 10
BAR_MAX = 40


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    text: str
    rank: int  # 0 is kept longest


@dataclass(frozen=True, slots=True)
class Glance:
    fraction: float  # of the files known so far; 1.0 once every file has its outcome
    fields: list[Field]


def files_total_text(stats: RunStats) -> str:
    """`120/≥200 files` while the sources are still being read, `120/200 files` after."""
    total = f"{stats.files_known}" if stats.sources_read else f"≥{stats.files_known}"
    return f"{stats.files_done}/{total} files"


def glance(stats: RunStats, pace: Pace) -> Glance:
    known, done = stats.files_known, stats.files_done
    fraction = 1.0 if stats.sources_read and done >= known else (done / known if known else 0.0)
    fields = [Field("files", f"{files_total_text(stats)} {fraction * 100:.0f}%", 0)]
    if pace.files_per_second is not None:
        fields.append(Field("rate", f"{pace.files_per_second:.1f} files/s", 1))
    eta = eta_seconds(known - done, pace, stats.bytes_listed / known if known else 0.0)
    if stats.sources_read and done >= known:
        eta = 0.0
    eta_text = "-:--:--" if eta is None else clock_text(eta)
    fields.append(Field("eta", f"ETA {'' if stats.sources_read or eta is None else '≥'}{eta_text}", 1))
    if stats.failed:
        fields.append(Field("failed", f"{stats.failed} failed", 0))
    if stats.rejected:
        fields.append(Field("rejected", f"{stats.rejected} rejected", 2))
    fields.append(Field("bytes", f"{human_bytes(stats.bytes_moving)}", 4))
    if pace.bytes_per_second is not None:
        fields.append(Field("byte_rate", f"{human_bytes(pace.bytes_per_second)}/s", 5))
    fields.append(Field("in_flight", f"{stats.in_flight} in flight", 6))
    accepted = accepted_rates_text(stats.rates)
    if accepted:
        fields.append(Field("accepted", accepted, 3))
    skipped = stats.skipped_done + stats.skipped_unsettled
    if skipped:
        fields.append(Field("skipped", f"{skipped} skipped", 7))
    if stats.retries:
        fields.append(Field("retries", plural(stats.retries, "retry", "retries"), 7))
    fields.append(Field("elapsed", clock_text(stats.elapsed), 8))
    return Glance(fraction, fields)


def fit(fields: list[Field], width: int, separator: str = ", ") -> tuple[list[Field], int]:
    """The fields that fit in `width` columns, best ranked first, shown in their reading order,
    and the width of the bar beside them (0 when there is no room for one). The last column is
    left free: a line that fills it wraps on some terminals."""
    width -= 1
    room = width - (BAR_MIN + 1 if width >= 2 * BAR_MIN + 40 else 0)  # a narrow line keeps no bar
    kept: set[int] = set()
    used = 0
    for index in sorted(range(len(fields)), key=lambda i: fields[i].rank):
        cost = len(fields[index].text) + (len(separator) if kept else 0)
        if used + cost > room:
            break  # strictly by rank: a less useful field never takes the place of a better one
        kept.add(index)
        used += cost
    shown = [field for i, field in enumerate(fields) if i in kept]
    spare = width - used - 1
    return shown, (min(spare, BAR_MAX) if room < width and spare >= BAR_MIN else 0)


def line_text(shown: list[Field], separator: str = ", ") -> str:
    return separator.join(field.text for field in shown)
