"""Synthetic but plausible transcripts: deterministic words with timings, as json, txt and srt.

Seeded by the job_id, so the same job always yields the same transcript, and sized from the audio
duration, so a long file gets a long transcript. SRT cues honour `srt_overrides`.
"""

from __future__ import annotations

import json
import math
import random
import textwrap
from dataclasses import dataclass
from typing import Any

WORDS = (
    "the",
    "team",
    "reviewed",
    "quarterly",
    "numbers",
    "and",
    "agreed",
    "to",
    "ship",
    "release",
    "candidate",
    "next",
    "week",
    "while",
    "support",
    "tracks",
    "open",
    "tickets",
    "from",
    "customers",
    "in",
    "europe",
    "we",
    "should",
    "schedule",
    "a",
    "follow",
    "up",
    "call",
    "about",
    "pricing",
    "latency",
    "budget",
    "storage",
    "costs",
    "migration",
    "plan",
    "onboarding",
    "documentation",
    "training",
    "risks",
    "dependencies",
)

DEFAULT_DURATION = 30.0
DEFAULT_MAX_LINE_LENGTH = 37
DEFAULT_MAX_LINES = 2
MAX_WORDS = 200_000


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    ends_sentence: bool


def make_words(job_id: str, duration: float | None) -> list[Word]:
    rng = random.Random(job_id)
    total = duration if duration and duration > 0 else DEFAULT_DURATION
    words: list[Word] = []
    t = min(0.3, total / 10)
    sentence_len = 0
    while t < total - 0.05 and len(words) < MAX_WORDS:
        length = rng.uniform(0.18, 0.55)
        end = min(total, t + length)
        sentence_len += 1
        ends = sentence_len >= rng.randint(6, 14) or end >= total
        text = rng.choice(WORDS)
        words.append(
            Word(text.capitalize() if sentence_len == 1 else text, _ms_floor(t), _ms_floor(end), ends)
        )
        if ends:
            sentence_len = 0
        t = end + rng.uniform(0.02, 0.25) + (0.4 if ends else 0.0)
    if words and not words[-1].ends_sentence:
        last = words[-1]
        words[-1] = Word(last.text, last.start, last.end, True)
    return words


def _ms_floor(seconds: float) -> float:
    """Millisecond precision without ever rounding past the end of the audio."""
    return math.floor(seconds * 1000) / 1000


def to_json(job_id: str, words: list[Word], duration: float | None, language: str) -> str:
    results: list[dict[str, Any]] = []
    for w in words:
        results.append(
            {
                "type": "word",
                "start_time": w.start,
                "end_time": w.end,
                "alternatives": [
                    {"content": w.text, "confidence": 0.93, "language": language, "speaker": "S1"}
                ],
            }
        )
        if w.ends_sentence:
            results.append(
                {
                    "type": "punctuation",
                    "start_time": w.end,
                    "end_time": w.end,
                    "is_eos": True,
                    "alternatives": [
                        {"content": ".", "confidence": 1.0, "language": language, "speaker": "S1"}
                    ],
                }
            )
    doc = {
        "format": "2.9",
        "job": {"id": job_id, "duration": duration if duration is not None else DEFAULT_DURATION},
        "metadata": {"transcription_config": {"language": language}, "generator": "slng-sandbox"},
        "results": results,
    }
    return json.dumps(doc, indent=1)


def _sentences(words: list[Word]) -> list[list[Word]]:
    out: list[list[Word]] = [[]]
    for w in words:
        out[-1].append(w)
        if w.ends_sentence:
            out.append([])
    return [s for s in out if s]


def to_txt(words: list[Word]) -> str:
    return "\n".join(" ".join(w.text for w in s) + "." for s in _sentences(words)) + "\n"


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(words: list[Word], max_line_length: int | None, max_lines: int | None) -> str:
    """Cues of whole words, each at most `max_lines` lines of at most `max_line_length` chars."""
    width = max_line_length or DEFAULT_MAX_LINE_LENGTH
    lines_per_cue = max_lines or DEFAULT_MAX_LINES
    cues: list[tuple[float, float, list[str]]] = []
    for sentence in _sentences(words):
        current: list[Word] = []
        for w in sentence:
            trial = " ".join(x.text for x in [*current, w]) + ("." if w.ends_sentence else "")
            if current and len(_wrap(trial, width)) > lines_per_cue:
                cues.extend(_cues(current, width, lines_per_cue))
                current = []
            current.append(w)
        if current:
            cues.extend(_cues(current, width, lines_per_cue))
    blocks = [
        f"{i}\n{_stamp(a)} --> {_stamp(b)}\n" + "\n".join(lines) for i, (a, b, lines) in enumerate(cues, 1)
    ]
    return "\n\n".join(blocks) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    # break_long_words keeps the limit even for a word longer than a line
    return textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]


def _cues(words: list[Word], width: int, lines_per_cue: int) -> list[tuple[float, float, list[str]]]:
    """One cue, or several when a single long word alone overflows the cue (time split evenly)."""
    text = " ".join(w.text for w in words) + ("." if words[-1].ends_sentence else "")
    lines = _wrap(text, width)
    groups = [lines[i : i + lines_per_cue] for i in range(0, len(lines), lines_per_cue)]
    start, end = words[0].start, words[-1].end
    step = (end - start) / len(groups)
    return [(start + i * step, start + (i + 1) * step, g) for i, g in enumerate(groups)]
