"""`--path-map FROM=TO`: where a file recorded by another host lives on this one.

On a shared ledger, paths are recorded as the host that enqueued them saw them (`/mnt/nas/a.wav`);
another host may mount the same files elsewhere (`/data/nas/a.wav`). The map rewrites a recorded
path's prefix to the local one before a file is opened. Prefixes match whole path components
(`/mnt/nas` rewrites `/mnt/nas/a.wav`, never `/mnt/nas2/a.wav`); the longest matching FROM wins.
The recorded path stays the file's identity in the ledger: only where it is read from changes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

USAGE = "--path-map takes FROM=TO with two absolute paths (e.g. /mnt/nas=/data/nas)"


def _clean(path: str) -> str:
    """Normalised, without a trailing slash (but "/" stays "/")."""
    return posixpath.normpath(path) if path.startswith("/") else ""


@dataclass(frozen=True, slots=True)
class PathMap:
    """Prefix rewrites, longest FROM first."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> PathMap:
        """From `FROM=TO` strings; a malformed one is a ValueError naming it and the expected form."""
        rules: dict[str, str] = {}
        for spec in specs:
            source, sep, target = spec.partition("=")
            origin, local = _clean(source.strip()), _clean(target.strip())
            if not sep or not origin or not local:
                raise ValueError(f"{USAGE}, not {spec[:80]!r}")
            if rules.get(origin, local) != local:
                raise ValueError(f"--path-map maps {origin} twice ({rules[origin]} and {local})")
            rules[origin] = local
        ordered = sorted(rules.items(), key=lambda rule: len(rule[0]), reverse=True)
        return cls(tuple(ordered))

    def local(self, recorded: str) -> str:
        """Where the file recorded as `recorded` lives here (unchanged when no rule matches)."""
        for origin, target in self.rules:
            if origin == "/":
                rest = recorded[1:] if recorded.startswith("/") else None
            elif recorded == origin:
                rest = ""
            elif recorded.startswith(origin + "/"):
                rest = recorded[len(origin) + 1 :]
            else:
                rest = None
            if rest is not None:
                return posixpath.join(target, rest) if rest else target
        return recorded

    def __bool__(self) -> bool:
        return bool(self.rules)
