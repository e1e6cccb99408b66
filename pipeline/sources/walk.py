"""Directories: a lazy, sorted, depth-first walk with include/exclude globs, safe from symlink loops."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator

from pipeline.api.models import AUDIO_EXTENSIONS
from pipeline.sources.checks import SourceOptions, check_file, manifest_error, os_reason, reject
from pipeline.sources.lines import has_surrogates
from pipeline.sources.rows import FileSpec, JobSettings, Row

Globs = list[tuple[re.Pattern[str], bool]]


def compile_globs(patterns: Iterable[str]) -> Globs:
    """(regex, whole-path-only): a pattern without '/' also matches the bare name, gitignore-style."""
    compiled = []
    for pattern in patterns:
        cleaned = pattern.removeprefix("./").rstrip("/") or pattern
        compiled.append((re.compile(fnmatch.translate(cleaned)), "/" in cleaned))
    return compiled


def matches(globs: Globs, rel: str, name: str) -> bool:
    """Whether a path (relative to the walked root or prefix) or its bare name matches a glob."""
    return any(rx.match(rel) or (not path_only and rx.match(name)) for rx, path_only in globs)


def _scan_sorted(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def wanted(rel: str, name: str, include: Globs, exclude: Globs) -> bool:
    """A file of a walk or a cloud listing is taken: an audio extension, --include and --exclude."""
    if os.path.splitext(name)[1][1:].lower() not in AUDIO_EXTENSIONS:
        return False
    if include and not matches(include, rel, name):
        return False
    return not (exclude and matches(exclude, rel, name))


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
            if exclude and matches(exclude, rel, name):
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
        if not wanted(rel, name, include, exclude):
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
