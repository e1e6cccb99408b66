"""Directories: a lazy, sorted, depth-first walk with include/exclude globs, safe from symlink loops."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.api.models import AUDIO_EXTENSIONS
from pipeline.logs import log
from pipeline.sources.checks import SourceOptions, WalkTally, check_file, manifest_error, os_reason, reject
from pipeline.sources.lines import has_surrogates
from pipeline.sources.rows import FileSpec, JobSettings, Row


@dataclass(frozen=True)
class Glob:
    """One --include/--exclude pattern, matched against a path relative to the walked folder (or
    cloud prefix), with '/' between folders:

    - `*` and `?` stay within one name (never cross '/'); `[abc]` is one character of a set;
    - `**` as a whole name spans any number of folders, none included (`calls/**/x.wav`);
    - a pattern without '/' matches a file or folder name at any depth (`*.wav`, `2026-01-01`);
      with '/' it is anchored at the top of the source (`2026-01/*.wav`; a leading '/' is allowed);
    - a pattern that matches a folder matches every file below it (`2026-01-01` takes its contents).
    """

    pattern: str
    regex: re.Pattern[str]
    anchored: bool  # has a '/': matched against the relative path from the top, else against names

    def matches(self, rel: str) -> bool:
        """Whether the file at `rel` (or a folder it is in) matches."""
        parts = rel.split("/")
        if not self.anchored:
            return any(self.regex.fullmatch(part) for part in parts)
        return any(self.regex.fullmatch("/".join(parts[:depth])) for depth in range(1, len(parts) + 1))


def _translate(pattern: str) -> str:
    """The regular expression of a glob whose `*` stays within one name (see `Glob`)."""
    out: list[str] = []
    names = pattern.split("/")
    for index, name in enumerate(names):
        last = index == len(names) - 1
        if name == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(_translate_name(name) + ("" if last else "/"))
    return "".join(out)


def _translate_name(name: str) -> str:
    """One name of a glob: `*`, `?` and `[...]` (`[!...]` negated) within the name, else literal."""
    out: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        close = name.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close != -1:
            members = name[i + 1 : close]
            negate = members.startswith("!")
            members = members[1:] if negate else members
            members = members.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{'^/' if negate else ''}{members}]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def compile_globs(patterns: Iterable[str]) -> list[Glob]:
    compiled = []
    for pattern in patterns:
        cleaned = pattern.removeprefix("./").lstrip("/").rstrip("/") or pattern
        compiled.append(Glob(pattern, re.compile(_translate(cleaned)), "/" in cleaned))
    return compiled


def matches(globs: list[Glob], rel: str) -> Glob | None:
    """The first glob that matches a path relative to the walked root or prefix, if any."""
    return next((glob for glob in globs if glob.matches(rel)), None)


def _scan_sorted(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def wanted(
    rel: str, name: str, include: list[Glob], exclude: list[Glob], used: set[str] | None = None
) -> bool:
    """A file of a walk or a cloud listing is taken: an audio extension, --include and --exclude.
    `used` collects the patterns that matched an audio file (to warn of one that never does)."""
    if os.path.splitext(name)[1][1:].lower() not in AUDIO_EXTENSIONS:
        return False
    hit = matches(include, rel) if include else None
    if include and hit is None:
        return False
    if hit is not None and used is not None:
        used.add(hit.pattern)
    dropped = matches(exclude, rel) if exclude else None
    if dropped is not None and used is not None:
        used.add(dropped.pattern)
    return dropped is None


def walk_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
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
        raise manifest_error(source, f"cannot read directory: {os_reason(exc)}") from None
    include, exclude = compile_globs(options.include), compile_globs(options.exclude)
    follow, max_bytes = options.follow_symlinks, options.max_file_bytes
    used: set[str] = set()  # the patterns that matched something: one that never does is told
    tally = options.tally if options.tally is not None else WalkTally()
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
            tally.hidden += 1
            continue
        rel = prefix + name
        try:
            is_link = entry.is_symlink()
            if is_link and not follow:
                tally.links += 1
                continue
            is_dir = entry.is_dir()
        except OSError:
            is_link, is_dir = False, False
        full = os.path.join(root, rel) if os.sep == "/" else os.path.join(root, *rel.split("/"))
        if is_dir:
            dropped = matches(exclude, rel) if exclude else None
            if dropped is not None:
                used.add(dropped.pattern)
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
                yield reject(source, None, full, f"cannot read directory: {os_reason(exc)}")
                continue
            on_path.add(key)
            if follow:
                visited.add(key)
            stack.append((iter(children), rel + "/", key))
            continue
        if not wanted(rel, name, include, exclude, used):
            continue
        if has_surrogates(rel):
            yield reject(source, None, full, "file name is not valid UTF-8")
            continue
        checked = check_file(full, max_bytes)
        if isinstance(checked, str):
            if is_link and checked == "file not found":
                checked = "broken symbolic link"
            yield reject(source, None, full, checked)
            continue
        yield FileSpec(source, None, full, checked.st_size, checked.st_mtime_ns, None, defaults, rel)
    warn_unused(source, [*include, *exclude], used)


def warn_unused(source: str, globs: list[Glob], used: set[str]) -> None:
    """Say which --include/--exclude pattern matched nothing under a source: often a typo, or a
    folder name meant as a path."""
    for glob in globs:
        if glob.pattern not in used:
            log.warning("%s matched nothing under %s", glob.pattern, source)
