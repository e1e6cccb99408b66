"""Settings errors in plain words, naming where the bad value came from, with a suggestion for a
misspelt key: pydantic's own wording ("Input should be greater than or equal to 1", "Extra inputs
are not permitted") says neither what to do nor where to look."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic_core import ErrorDetails

# Never echoed: their values are credentials, or may hold one (a PostgreSQL ledger URL's password).
SECRET_SETTINGS = frozenset({"api_key", "api_key_file", "ledger"})

_PLAIN: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "greater_than": lambda c: f"must be more than {c.get('gt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
    "int_parsing": lambda c: "must be a whole number",
    "int_type": lambda c: "must be a whole number",
    "int_from_float": lambda c: "must be a whole number",
    "float_parsing": lambda c: "must be a number",
    "float_type": lambda c: "must be a number",
    "bool_parsing": lambda c: "must be true or false",
    "bool_type": lambda c: "must be true or false",
    "literal_error": lambda c: "must be one of " + str(c.get("expected", "")).replace("'", ""),
    "missing": lambda c: "is required",
    "string_too_short": lambda c: f"must be at least {c.get('min_length')} characters long",
    "string_too_long": lambda c: f"must be at most {c.get('max_length')} characters long",
    "too_short": lambda c: f"must have at least {c.get('min_length')} items",
    "extra_forbidden": lambda c: "is not a setting",
}


def plain_words(error: ErrorDetails) -> str:
    """What is wrong with the value, as a person would say it ("must be at least 1")."""
    describe = _PLAIN.get(error["type"])
    if describe is not None:
        return describe(error.get("ctx", {}))
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def shown_value(name: str, value: Any) -> str | None:
    """The value as given, for the message; None for a secret or a long or structured value."""
    if name in SECRET_SETTINGS or not isinstance(value, str | int | float | bool):
        return None
    text = str(value)
    return text if len(text) <= 60 and text.isprintable() else None


def nearest(key: str, names: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt one, if one is close enough (difflib)."""
    matches = difflib.get_close_matches(key.replace("-", "_").lower(), list(names), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key(key: str, where: str, names: Iterable[str]) -> str:
    """`unknown key concurency in config file x.toml: did you mean concurrency?`"""
    guess = nearest(key, names)
    hint = f": did you mean {guess}?" if guess else " (the README's settings table lists every key)"
    return f"unknown key {key} in {where}{hint}"
