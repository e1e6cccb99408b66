"""The local checks every row passes before any remote call, and how a failed one is reported.

A file is only stat()ed, never opened (a FIFO would block); the reasons are short and name no
path (the Rejection carries it, escaped).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Final, TextIO

from pipeline.api.models import AUDIO_EXTENSIONS, MAX_FILE_BYTES, is_valid_job_id
from pipeline.sources.lines import has_surrogates
from pipeline.sources.remote import url_row
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row, escape_control, quote

if TYPE_CHECKING:
    from pipeline.sources.row_settings import SettingsCache

_SUPPORTED: Final = ", ".join(sorted(AUDIO_EXTENSIONS))


@dataclass
class WalkTally:
    """What folder walks left out without a word per entry, for the run's summary."""

    links: int = 0  # symbolic links not followed (--follow-symlinks takes them)
    hidden: int = 0  # dot-files and dot-folders (a folder counts once, its contents not at all)


@dataclass(frozen=True)
class SourceOptions:
    """How sources are read; the include/exclude globs and symlink policy apply to directory walks."""

    include: tuple[str, ...] = ()  # any match includes (none given: everything)
    exclude: tuple[str, ...] = ()  # any match excludes; also prunes matching directories
    follow_symlinks: bool = False
    max_file_bytes: int = MAX_FILE_BYTES
    stdin: TextIO | None = None  # for "-"; default: sys.stdin (read as bytes)
    allow_http_urls: bool = False  # url rows may be plain http:// (the sandbox, a loopback server)
    null_separated: bool = False  # stdin: paths separated by NUL bytes (find -print0), not lines
    tally: WalkTally | None = field(default=None, compare=False)  # counts what walks leave out


class ManifestError(Exception):
    """A whole source is unusable (missing, unreadable, bad CSV header); the message names it."""


def reject(source: str, line: int | None, path: str | None, reason: str) -> Rejection:
    """Rejection whose reason is safe to log as is (the path is escaped by Rejection.message).

    A source or path holding surrogates (undecodable file-name bytes, or a JSON "\\ud800") cannot
    be stored as UTF-8 text (the ledger would fail on it): those are kept in their escaped spelling.
    """
    if path is not None and has_surrogates(path):
        path = escape_control(path)
    if has_surrogates(source):
        source = escape_control(source)
    return Rejection(source, line, path, escape_control(reason))


def manifest_error(source: str, problem: str) -> ManifestError:
    return ManifestError(escape_control(f"{source}: {problem}"))


def os_reason(exc: OSError) -> str:
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


def _posix_extension(path: str) -> str:
    """os.path.splitext(path)[1] on POSIX, inline (splitext was a tenth of a manifest row)."""
    dot = path.rfind(".")
    start = path.rfind("/") + 1
    if dot > start and path[start:dot].lstrip("."):
        return path[dot:]
    return ""


def _splitext_extension(path: str) -> str:
    return os.path.splitext(path)[1]


_POSIX: Final = os.sep == "/" and os.altsep is None
_extension: Final = _posix_extension if _POSIX else _splitext_extension


def _audio_extension_quick(path: str) -> bool:
    """True only when the path surely has a supported extension (lower case, a name before the dot).

    The common case without the general rule's slicing (a tenth of a row); False says nothing:
    the caller then applies the general rule.
    """
    dot = path.rfind(".")
    return dot > 0 and path[dot + 1 :] in AUDIO_EXTENSIONS and path[dot - 1] not in "/."


def _posix_row_path(cell: str, prefix: str) -> str:
    """os.path.normpath(os.path.join(root, cell)) on POSIX; `prefix` is root + "/", root normal.

    A path with no empty, "." or ".." part and no trailing slash is already normal: no "//", no
    "/." (a part starting with a dot, which includes "." and ".."), not ending in "/". Such a path,
    the usual one, skips normpath (a twentieth of a row); anything else takes it.
    """
    path = cell if cell.startswith("/") else prefix + cell
    if "//" in path or "/." in path or path.endswith("/"):
        return os.path.normpath(path)
    return path


def _any_row_path(cell: str, prefix: str) -> str:
    return os.path.normpath(cell if os.path.isabs(cell) else prefix + cell)


_row_path: Final = _posix_row_path if _POSIX else _any_row_path


def check_file(path: str, max_bytes: int) -> os.stat_result | str:
    """Stat (never open) the file; the stat result if it is uploadable, else the reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return os_reason(exc)
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no file can have that name
        return "path is not valid Unicode (a lone surrogate)"
    except ValueError:  # embedded NUL
        return "path contains a NUL byte"
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            return "is a directory"
        return f"not a regular file ({_kind_of(mode)})"
    if not _audio_extension_quick(path) and (ext := _extension(path))[1:].lower() not in AUDIO_EXTENSIONS:
        what = f"unsupported extension {quote(ext)}" if ext else "no file extension"
        return f"{what} (supported: {_SUPPORTED})"
    size = st.st_size
    if size == 0:
        return "empty file (0 bytes)"
    if size > max_bytes:
        return f"file too large ({size} bytes, limit {max_bytes})"
    if not _mode_says_readable(st) and not os.access(path, os.R_OK):
        return "permission denied (not readable)"
    return st


_READ_BY_ALL: Final = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_geteuid: Final = getattr(os, "geteuid", lambda: -1)  # asked each time: a process may change its uid


def _mode_says_readable(st: os.stat_result) -> bool:
    """Whether the mode bits alone let us read the file, so the os.access call can be skipped.

    os.access was a third of the time of a manifest row; most audio files are 0644 or ours.
    Only the two cases the mode settles are taken: readable by owner, group and others alike, or
    ours (and we are not root, whom NFS may squash) with the owner read bit. Anything else asks
    os.access, as before. An ACL or a security module refusing a world-readable file shows when the
    file is opened for its upload, as any other open failure does.
    """
    mode = st.st_mode
    if mode & _READ_BY_ALL == _READ_BY_ALL:
        return True
    euid = _geteuid()
    return st.st_uid == euid and euid != 0 and bool(mode & stat.S_IRUSR)


def relative_to(path: str, prefix: str) -> str:
    """Path relative to a root (prefix = root + sep), else the absolute path without its leading '/'."""
    rel = path[len(prefix) :] if path.startswith(prefix) else path.lstrip(os.sep)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


def root_prefix(root: str) -> str:
    return root if root.endswith(os.sep) else root + os.sep


@dataclass(frozen=True, slots=True)
class SourceContext:
    """Per-source constants shared by every row of that source."""

    source: str
    root: str  # absolute folder that relative paths resolve against
    prefix: str  # root + separator, for relative_path
    max_bytes: int
    cache: SettingsCache
    allow_http: bool = False  # SourceOptions.allow_http_urls

    @classmethod
    def under(cls, source: str, root: str, options: SourceOptions, defaults: JobSettings) -> SourceContext:
        """The context of a source whose relative paths resolve against `root`."""
        from pipeline.sources.row_settings import SettingsCache

        return cls(
            source,
            root,
            root_prefix(root),
            options.max_file_bytes,
            SettingsCache(defaults),
            options.allow_http_urls,
        )


def file_row(
    ctx: SourceContext, line: int | None, path_cell: str, job_id: str | None, settings: JobSettings | str
) -> Row:
    """Resolve and check one manifest/stdin path; `settings` is a str when they were rejected.

    Checks run cheapest first and the file is only stat()ed, never opened (a FIFO would block).
    """
    if not path_cell:
        return reject(ctx.source, line, None, "missing path")
    if "\0" in path_cell:
        return reject(ctx.source, line, None, f"path contains a NUL byte: {quote(path_cell)}")
    path = _row_path(path_cell, ctx.prefix)
    if job_id is not None and not is_valid_job_id(job_id):
        return reject(ctx.source, line, path, f"invalid job_id {quote(job_id)}: use 1-128 letters and digits")
    if isinstance(settings, str):
        return reject(ctx.source, line, path, settings)
    checked = check_file(path, ctx.max_bytes)
    if isinstance(checked, str):
        return reject(ctx.source, line, path, checked)
    relative = relative_to(path, ctx.prefix)
    return FileSpec(ctx.source, line, path, checked.st_size, checked.st_mtime_ns, job_id, settings, relative)


def path_or_url_row(
    ctx: SourceContext,
    line: int | None,
    path_cell: str,
    url_cell: str,
    job_id: str | None,
    settings: JobSettings | str,
) -> Row:
    """A row that names its audio by a local path or by a URL (`url`), never both."""
    if not url_cell:
        return file_row(ctx, line, path_cell, job_id, settings)
    if path_cell:
        return reject(ctx.source, line, None, "give either path or url, not both")
    return url_row(ctx.source, line, url_cell, job_id, settings, allow_http=ctx.allow_http)


def open_manifest(source: str) -> IO[bytes]:
    try:
        return open(source, "rb")  # closed by the caller's `with`
    except OSError as exc:
        raise manifest_error(source, f"cannot open manifest: {os_reason(exc)}") from None
