"""Domain errors. Every front end turns them into its own form (HTTP, CLI, diagnostics).

The message is an English msgid with ``{placeholders}``; front ends translate it into the
reader's language through the catalogues in ``consortia/locale``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **params: Any) -> None:
        self.message = message
        self.field = field
        self.params = params
        super().__init__(self.render())

    def render(self, translate: Any = None) -> str:
        text = translate(self.message) if translate else self.message
        try:
            return str(text).format(**self.params)
        except (KeyError, IndexError):
            return str(text)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "invalid"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"


class RowErrors(DomainError):
    """Many problems at once, e.g. every bad row of an import with its line and field."""

    status = 422
    code = "invalid_rows"

    def __init__(self, message: str, problems: list[dict[str, Any]], **params: Any) -> None:
        self.problems = problems
        super().__init__(message, **params)
