"""One way to tell a client what pydantic refused: ``field: message`` (a dotted path)."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def field_of(
    error: ErrorDetails, *, prefix: str = "", default: str = "body", tag: object = None
) -> str:
    """The dotted path of one error, under ``prefix``; ``tag``: a tagged union's branch name
    that pydantic puts first, which is not a field."""
    location = list(error["loc"])
    if tag is not None and location and location[0] == tag:
        location = location[1:]
    where = ".".join(str(part) for part in location)
    return ".".join(part for part in (prefix, where) if part) or default


def problems(
    err: ValidationError,
    *,
    limit: int = 1,
    prefix: str = "",
    default: str = "body",
    tag: object = None,
) -> list[tuple[str, str]]:
    """(field, pydantic's message) of the first ``limit`` errors. A validator's own
    sentence is for people as it is: no "Value error, " before it."""
    return [
        (
            field_of(error, prefix=prefix, default=default, tag=tag),
            str(error["msg"]).removeprefix("Value error, "),
        )
        for error in err.errors()[:limit]
    ]


def describe(
    err: ValidationError, *, limit: int = 1, prefix: str = "", default: str = "body"
) -> str:
    """``session_id: String should match pattern ...`` rather than pydantic's full report."""
    return "; ".join(
        f"{field}: {message}"
        for field, message in problems(err, limit=limit, prefix=prefix, default=default)
    )
