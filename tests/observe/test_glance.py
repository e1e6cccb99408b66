"""The progress line: files done of a total still counting, a pace from done work that a growing
total does not reset, an ETA from what remains, and a line fitted to 80 or 160 columns."""

from __future__ import annotations

from pipeline.observe.glance import fit, glance, line_text
from pipeline.observe.pace import Pace, PaceMeter, eta_seconds
from pipeline.observe.stats import RunStats, human_bytes, plural


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busy_stats() -> RunStats:
    stats = RunStats(run_id="t")
    stats.rows_seen, stats.created, stats.failed, stats.rejected = 200, 110, 2, 1
    stats.skipped_done, stats.in_flight, stats.retries = 7, 8, 3
    stats.bytes_sent = 123_400_000
    stats.rates = {"create": {"ceiling": 80.0, "accepted": 19.8, "throttles": 4.0, "current": 18.0}}
    return stats


def test_the_pace_comes_from_done_work_and_a_growing_total_does_not_reset_it() -> None:
    clock = FakeClock()
    meter = PaceMeter(clock=clock)
    stats = RunStats(run_id="t")
    paces = []
    for second in range(1, 25):
        clock.now = float(second)
        stats.rows_seen += 50  # the walk keeps finding files
        stats.created += 3
        paces.append(meter.sample(stats.created, stats.created * 1000))
    assert all(p.files_per_second is not None for p in paces[1:])
    assert paces[-1].files_per_second == 3.0 and paces[-1].bytes_per_second == 3000.0
    text = line_text(glance(stats, paces[-1]).fields)
    assert f"72/≥{stats.rows_seen} files" in text and "3.0 files/s" in text
    assert "ETA ≥0:06:16" in text  # (1200 - 72) / 3 s, a lower bound while the walk goes on


def test_the_eta_is_what_remains_over_the_pace() -> None:
    assert eta_seconds(300, Pace(3.0, None)) == 100.0
    assert eta_seconds(5, Pace(None, None)) is None and eta_seconds(0, Pace(None, None)) == 0.0


def test_the_eta_is_the_longer_of_files_over_their_rate_and_bytes_over_theirs() -> None:
    pace = Pace(10.0, 50e6)  # 10 files/s, 50 MB/s
    assert eta_seconds(100, pace, bytes_per_file=100_000) == 10.0  # small files: the API's rate binds
    assert eta_seconds(100, pace, bytes_per_file=1e9) == 2000.0  # 100 GB left: the link binds
    assert eta_seconds(100, Pace(10.0, 0.0), bytes_per_file=1e9) == 10.0  # no byte pace yet: by files


def test_a_run_of_long_recordings_shows_the_eta_the_link_allows() -> None:
    """Half the files done quickly (the small ones came first), 50 GB of recordings to go at 50 MB/s:
    the ETA is the bytes' (1000 s), not the files' (5 s)."""
    stats = RunStats(run_id="t")
    for _ in range(50):
        stats.row_seen(10_000)
    for _ in range(50):
        stats.row_seen(2_000_000_000)
    stats.sources_read = True
    stats.created = 50
    text = line_text(glance(stats, Pace(10.0, 50e6)).fields)
    assert "ETA 0:16:40" in text, text  # 50 files x 1.0 GB on average / 50 MB/s


def test_the_byte_pace_counts_bytes_on_the_wire_and_never_goes_negative() -> None:
    clock = FakeClock()
    meter = PaceMeter(clock=clock)
    meter.sample(0, 0)
    clock.now = 2.0
    assert meter.sample(0, 100_000_000).bytes_per_second == 50e6  # a PUT half sent counts
    clock.now = 3.0
    assert meter.sample(0, 0).bytes_per_second == 0.0  # it failed: its bytes are taken back


def test_a_run_whose_files_were_already_there_ends_at_100_percent() -> None:
    stats = RunStats(run_id="t")
    stats.rows_seen, stats.already_created, stats.skipped_done = 10, 4, 6
    stats.sources_read = True
    view = glance(stats, Pace(None, None))
    assert view.fraction == 1.0
    assert line_text(view.fields).startswith("10/10 files 100%, ETA 0:00:00")


def test_at_80_columns_the_least_useful_fields_go_first_and_the_line_never_fills_the_width() -> None:
    view = glance(busy_stats(), Pace(3.2, 1_500_000.0))
    shown, bar = fit(view.fields, 80)
    names = [f.name for f in shown]
    assert {"files", "rate", "eta", "failed"} <= set(names)
    assert "elapsed" not in names and "skipped" not in names
    assert len(line_text(shown)) + (bar + 1 if bar else 0) <= 79
    assert bar >= 10  # a bar still fits beside them


def test_at_160_columns_every_field_is_shown() -> None:
    view = glance(busy_stats(), Pace(3.2, 1_500_000.0))
    shown, bar = fit(view.fields, 160)
    names = {f.name for f in shown}
    assert {"bytes", "byte_rate", "in_flight", "accepted", "skipped"} <= names
    assert "create 19.8/80 rps" in line_text(shown)
    assert len(line_text(shown)) + bar + 1 <= 159


def test_a_very_narrow_terminal_keeps_the_count_and_no_bar() -> None:
    view = glance(busy_stats(), Pace(3.2, None))
    shown, bar = fit(view.fields, 30)
    assert next(f.name for f in shown) == "files" and bar == 0
    assert len(line_text(shown)) <= 29


def test_one_unit_system_and_plurals() -> None:
    assert human_bytes(835_500) == "835.5 kB" and human_bytes(2_000_000) == "2.0 MB"
    assert plural(1, "rejected row") == "1 rejected row" and plural(2, "rejected row") == "2 rejected rows"
    assert plural(1, "retry", "retries") == "1 retry"
