"""The member registry's field names and rules, shared by the API, the CLI and CSV import.

The field names of ``MemberCreate`` are the API's JSON keys and the CSV column names alike, so a
file exported from a spreadsheet and a POST body are checked by the same rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from consortia.errors import Invalid, RowErrors
from consortia.members.models import Member, MemberStatus, MemberType, Sector

CODE_RE = re.compile(r"^[A-Z]{2}-[A-Za-z0-9:/-]{1,11}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HOST_RE = re.compile(r"^[A-Za-z0-9._\-\[\]:]+$")

# Inclusive bounds, kept here once: they feed both the OpenAPI schema and the error messages.
RANGES: dict[str, tuple[int, int]] = {
    "z3950_port": (1, 65535),
    "max_open_lending": (0, 100_000),
    "days_to_respond": (1, 60),
    "loan_period_days": (1, 365),
}
ENUMS: dict[str, type[MemberType | Sector | MemberStatus]] = {
    "type": MemberType,
    "sector": Sector,
    "status": MemberStatus,
}
TRUE_WORDS = frozenset({"true", "yes", "1", "是", "y", "t"})
FALSE_WORDS = frozenset({"false", "no", "0", "否", "n", "f"})

# Who may change what: a library's own admin keeps its contacts, endpoints and lending policy
# current; identity, standing and place in the consortium are the consortium office's.
CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")
ENDPOINT_FIELDS = (
    "z3950_host",
    "z3950_port",
    "z3950_database",
    "sru_url",
    "oai_url",
    "iso18626_url",
)
POLICY_FIELDS = (
    "lends_loans",
    "lends_copies",
    "max_open_lending",
    "days_to_respond",
    "loan_period_days",
)
SELF_SERVICE_FIELDS = frozenset(CONTACT_FIELDS + ENDPOINT_FIELDS + POLICY_FIELDS)

DEFAULT_SECTOR = {
    MemberType.academic: Sector.education,
    MemberType.school: Sector.education,
    MemberType.public: Sector.culture,
    MemberType.special: Sector.other,
}

# msgids of the reasons a field is refused (translated in members.po).
R_REQUIRED = "is required"
R_BLANK = "must not be blank"
R_NOT_NULL = "cannot be cleared"
R_CODE = (
    "must be an ISIL-style code such as CN-GZUCM: two capital letters, a hyphen, "
    "then up to 11 letters, digits or : / -"
)
R_URL = "must be an http or https URL with a host, e.g. https://lib.example.org/sru"
R_HOST = "must be a host name or IP address, without scheme or port"
R_EMAIL = "must be an e-mail address such as ill@lib.example.org"
R_INT = "must be a whole number"
R_RANGE = "must be between {min} and {max}"
R_BOOL = "must be true or false (yes/no, 1/0, 是/否)"
R_DATE = "must be a date written YYYY-MM-DD"
R_CHOICE = "must be one of: {choices}"
R_TOO_LONG = "must be at most {max} characters"
R_TEXT = "must be text"
R_UNKNOWN_FIELD = "is not a member field"
R_OTHER = "is not valid: {detail}"


def _refuse(reason: str, **params: Any) -> PydanticCustomError:
    # The reason travels in the context so that front ends can translate it later.
    return PydanticCustomError("member_field", reason, {"reason": reason, **params})


def _as_bool(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _text(value: Any) -> Any:
    value = _strip(value)
    if value == "":
        raise _refuse(R_BLANK)
    return value


def _optional_text(value: Any) -> Any:
    # An empty optional string means "none", the same as an empty CSV cell.
    value = _strip(value)
    return None if value == "" else value


def _code(value: Any) -> Any:
    value = _strip(value)
    if isinstance(value, str) and not CODE_RE.match(value):
        raise _refuse(R_CODE)
    return value


def _optional_code(value: Any) -> Any:
    value = _optional_text(value)
    return None if value is None else _code(value)


def _url(value: Any) -> Any:
    value = _optional_text(value)
    if value is None or not isinstance(value, str):
        return value
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise _refuse(R_URL) from None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        raise _refuse(R_URL)
    return value


def _host(value: Any) -> Any:
    value = _optional_text(value)
    if isinstance(value, str) and ("://" in value or not HOST_RE.match(value)):
        raise _refuse(R_HOST)
    return value


def _email(value: Any) -> Any:
    value = _optional_text(value)
    if isinstance(value, str) and not EMAIL_RE.match(value):
        raise _refuse(R_EMAIL)
    return value


def _range(name: str) -> Any:
    lo, hi = RANGES[name]
    return Field(ge=lo, le=hi)


Code = Annotated[str, BeforeValidator(_code), Field(max_length=16, examples=["CN-GZUCM"])]
Name = Annotated[str, BeforeValidator(_text), Field(max_length=200)]
RegionCode = Annotated[str, BeforeValidator(_text), Field(max_length=40, examples=["guangdong"])]
Url = Annotated[Annotated[str, Field(max_length=500)] | None, BeforeValidator(_url)]
Host = Annotated[Annotated[str, Field(max_length=255)] | None, BeforeValidator(_host)]
Email = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_email)]
Flag = Annotated[bool, BeforeValidator(_as_bool)]
OptText200 = Annotated[
    Annotated[str, Field(max_length=200)] | None, BeforeValidator(_optional_text)
]
OptText120 = Annotated[
    Annotated[str, Field(max_length=120)] | None, BeforeValidator(_optional_text)
]
OptText60 = Annotated[Annotated[str, Field(max_length=60)] | None, BeforeValidator(_optional_text)]
OptCode = Annotated[Annotated[str, Field(max_length=16)] | None, BeforeValidator(_optional_code)]
Port = Annotated[int, _range("z3950_port")] | None
MaxOpen = Annotated[int, _range("max_open_lending")]
Days = Annotated[int, _range("days_to_respond")]
LoanDays = Annotated[int, _range("loan_period_days")]


class MemberCreate(BaseModel):
    """A new member. ``sector`` defaults from ``type``; an unknown ``region`` is created."""

    model_config = ConfigDict(extra="forbid")

    code: Code
    name_zh: Name
    name_en: Name
    type: MemberType
    sector: Sector | None = None
    region: RegionCode
    is_centre: Flag = False
    centre: OptCode = Field(default=None, description="Code of the member's regional centre.")
    status: MemberStatus = MemberStatus.active
    joined_on: dt.date | None = None
    status_since: dt.date | None = None
    left_on: dt.date | None = None
    contact_name: OptText200 = None
    contact_email: Email = None
    contact_phone: OptText60 = None
    z3950_host: Host = None
    z3950_port: Port = None
    z3950_database: OptText120 = None
    sru_url: Url = None
    oai_url: Url = None
    iso18626_url: Url = None
    lends_loans: Flag = True
    lends_copies: Flag = True
    max_open_lending: MaxOpen = 500
    days_to_respond: Days = 2
    loan_period_days: LoanDays = 30

    @field_validator("joined_on", "status_since", "left_on", mode="before")
    @classmethod
    def _empty_date(cls, value: Any) -> Any:
        return _optional_text(value)


# Fields that always hold a value; PATCH may change them but not clear them.
NOT_NULL = (
    "name_zh",
    "name_en",
    "type",
    "sector",
    "region",
    "is_centre",
    "status",
    "lends_loans",
    "lends_copies",
    "max_open_lending",
    "days_to_respond",
    "loan_period_days",
)


class MemberUpdate(BaseModel):
    """PATCH: only the fields given change; ``null`` clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    name_zh: Name | None = None
    name_en: Name | None = None
    type: MemberType | None = None
    sector: Sector | None = None
    region: RegionCode | None = None
    is_centre: Flag | None = None
    centre: OptCode = None
    status: MemberStatus | None = None
    joined_on: dt.date | None = None
    status_since: dt.date | None = None
    left_on: dt.date | None = None
    contact_name: OptText200 = None
    contact_email: Email = None
    contact_phone: OptText60 = None
    z3950_host: Host = None
    z3950_port: Port = None
    z3950_database: OptText120 = None
    sru_url: Url = None
    oai_url: Url = None
    iso18626_url: Url = None
    lends_loans: Flag | None = None
    lends_copies: Flag | None = None
    max_open_lending: MaxOpen | None = None
    days_to_respond: Days | None = None
    loan_period_days: LoanDays | None = None

    @field_validator("joined_on", "status_since", "left_on", mode="before")
    @classmethod
    def _empty_date(cls, value: Any) -> Any:
        return _optional_text(value)

    @field_validator(*NOT_NULL, mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for fields the caller gave: an explicit null on a required field is refused.
        if value is None:
            raise _refuse(R_NOT_NULL)
        return value


class MemberOut(BaseModel):
    """A member as the registry shows it; ``status`` says whether it is suspended."""

    code: str
    name_zh: str
    name_en: str
    type: MemberType
    sector: Sector
    region: str
    region_name_zh: str
    region_name_en: str
    is_centre: bool
    centre: str | None
    status: MemberStatus
    joined_on: dt.date | None
    status_since: dt.date | None
    left_on: dt.date | None
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    z3950_host: str | None
    z3950_port: int | None
    z3950_database: str | None
    sru_url: str | None
    oai_url: str | None
    iso18626_url: str | None
    lends_loans: bool
    lends_copies: bool
    max_open_lending: int
    days_to_respond: int
    loan_period_days: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, m: Member) -> MemberOut:
        return cls(
            code=m.code,
            name_zh=m.name_zh,
            name_en=m.name_en,
            type=m.type,
            sector=m.sector,
            region=m.region.code,
            region_name_zh=m.region.name_zh,
            region_name_en=m.region.name_en,
            is_centre=m.is_centre,
            centre=m.centre.code if m.centre is not None else None,
            status=m.status,
            joined_on=m.joined_on,
            status_since=m.status_since,
            left_on=m.left_on,
            contact_name=m.contact_name,
            contact_email=m.contact_email,
            contact_phone=m.contact_phone,
            z3950_host=m.z3950_host,
            z3950_port=m.z3950_port,
            z3950_database=m.z3950_database,
            sru_url=m.sru_url,
            oai_url=m.oai_url,
            iso18626_url=m.iso18626_url,
            lends_loans=m.lends_loans,
            lends_copies=m.lends_copies,
            max_open_lending=m.max_open_lending,
            days_to_respond=m.days_to_respond,
            loan_period_days=m.loan_period_days,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class MemberPage(BaseModel):
    items: list[MemberOut]
    total: int
    offset: int
    limit: int


class SuspendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


# --- turning pydantic's errors into translatable, field-named problems ---------------------


@dataclass(frozen=True)
class Problem:
    """One refused field: ``reason`` is an English msgid, ``params`` fill its placeholders."""

    field: str
    reason: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    line: int | None = None

    def text(self, translate: Callable[[str], str] | None = None) -> str:
        template = translate(self.reason) if translate else self.reason
        try:
            return str(template).format(**self.params)
        except (KeyError, IndexError):
            return str(template)

    def as_dict(self, translate: Callable[[str], str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.text(translate)}
        if self.line is not None:
            out = {"line": self.line, **out}
        return out


def explain(exc: ValidationError, line: int | None = None) -> list[Problem]:
    """Every error of a validation, as a field name and a reason that can be translated."""
    out: list[Problem] = []
    for err in exc.errors():
        loc = err.get("loc", ())
        name = str(loc[0]) if loc else ""
        kind = err["type"]
        ctx: dict[str, Any] = dict(err.get("ctx") or {})
        reason: str
        params: dict[str, Any] = {}
        if kind == "member_field":
            reason = str(ctx.pop("reason"))
            params = ctx
        elif kind == "missing":
            reason = R_REQUIRED
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            reason = R_INT
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            lo, hi = RANGES.get(name, (ctx.get("ge"), ctx.get("le")))
            reason, params = R_RANGE, {"min": lo, "max": hi}
        elif kind.startswith("bool"):
            reason = R_BOOL
        elif kind.startswith("date"):
            reason = R_DATE
        elif kind == "enum" and name in ENUMS:
            reason, params = R_CHOICE, {"choices": ", ".join(e.value for e in ENUMS[name])}
        elif kind == "string_too_long":
            reason, params = R_TOO_LONG, {"max": ctx.get("max_length")}
        elif kind == "string_type":
            reason = R_TEXT
        elif kind == "extra_forbidden":
            reason = R_UNKNOWN_FIELD
        else:
            reason, params = R_OTHER, {"detail": err.get("msg", "")}
        out.append(Problem(name, reason, params, line))
    return out


class FieldInvalid(Invalid):
    """422 for one field; the reason is translated along with the message around it."""

    def __init__(self, field_name: str, reason: str, **params: Any) -> None:
        self.reason = reason
        super().__init__("{field}: {reason}", field=field_name, **params)

    def render(self, translate: Any = None) -> str:
        problem = Problem(self.field or "", self.reason, self.params)
        frame = translate("{field}: {reason}") if translate else "{field}: {reason}"
        return str(frame).format(field=self.field, reason=problem.text(translate))


class ImportRefused(RowErrors):
    """Every bad row of an import; nothing was written. ``localized`` translates the rows."""

    def __init__(self, problems: list[Problem]) -> None:
        self.details = problems
        rows = len({p.line for p in problems})
        super().__init__(
            "Import refused, nothing was written: {rows} bad rows, {count} problems",
            [p.as_dict() for p in problems],
            rows=rows,
            count=len(problems),
        )

    def localize(self, translate: Callable[[str], str]) -> None:
        self.problems = [p.as_dict(translate) for p in self.details]


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate ``data`` as ``model``; the first bad field becomes a 422 naming it."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = explain(exc)[0]
        raise FieldInvalid(first.field, first.reason, **first.params) from None
