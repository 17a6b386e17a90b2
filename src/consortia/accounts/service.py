"""Accounts: users, passwords (argon2), web sessions, API tokens, login throttling.

The only module that writes the accounts tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from consortia.accounts.models import ApiToken, LoginFailure, User, WebSession
from consortia.accounts.roles import Principal, Role
from consortia.errors import Conflict, Invalid, NotFound, TooManyAttempts, Unauthorized
from consortia.events import service as events
from consortia.members.models import Member
from consortia.settings import get_settings

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,80}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "ctk_"
# A fixed hash verified when the user is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def principal_for(user: User, member_code: str | None) -> Principal:
    return Principal(
        kind="user",
        label=f"user:{user.username}",
        role=user.role,
        user_id=user.id,
        member_id=user.member_id,
        member_code=member_code,
    )


def _member_code(session: Session, member_id: int | None) -> str | None:
    if member_id is None:
        return None
    return session.scalar(select(Member.code).where(Member.id == member_id))


def create_user(
    session: Session,
    actor: Principal,
    *,
    username: str,
    password: str,
    role: Role,
    member_code: str | None = None,
    display_name: str = "",
    email: str | None = None,
) -> User:
    if not USERNAME_RE.match(username):
        raise Invalid("username: use 2-80 letters, digits or . _ @ -", field="username")
    if len(password) < MIN_PASSWORD:
        raise Invalid("password: at least {n} characters", field="password", n=MIN_PASSWORD)
    if role is Role.member_system:
        raise Invalid("role: member systems use API tokens, not accounts", field="role")
    member_id: int | None = None
    if member_code is not None:
        member_id = session.scalar(select(Member.id).where(Member.code == member_code))
        if member_id is None:
            raise NotFound("Unknown member code: {code}", field="member", code=member_code)
    if role is not Role.consortium_admin and member_id is None:
        raise Invalid(
            "member: a {role} account belongs to a member library", field="member", role=role.value
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("Username already taken: {username}", field="username", username=username)
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        member_id=member_id,
        display_name=display_name or username,
        email=email,
    )
    session.add(user)
    session.flush()
    events.record(
        session,
        actor,
        "user.created",
        "user",
        user.id,
        {"username": username, "role": role.value, "member": member_code},
        member_id=member_id,
    )
    return user


def _recent_failures(
    session: Session, column: InstrumentedAttribute[str], value: str, since: dt.datetime
) -> int:
    stmt = (
        select(func.count())
        .select_from(LoginFailure)
        .where(
            column == value,
            LoginFailure.at >= since,
        )
    )
    return int(session.scalar(stmt) or 0)


def authenticate(session: Session, username: str, password: str, address: str) -> User:
    """Check a password; refuse (429) after too many recent failures for the account or address.

    Failures are stored in the database so that every web process sees the same count.
    """
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(minutes=settings.login_window_minutes)
    limit = settings.login_max_failures
    if (
        _recent_failures(session, LoginFailure.username, username, since) >= limit
        or _recent_failures(session, LoginFailure.address, address, since) >= limit * 4
    ):
        raise TooManyAttempts(
            "Too many failed sign-ins; try again in {minutes} minutes",
            minutes=settings.login_window_minutes,
        )
    user = session.scalar(select(User).where(User.username == username))
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active:
        session.add(LoginFailure(username=username[:80], address=address[:64], at=now))
        raise Unauthorized("Wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    return user


@dataclass(frozen=True)
class NewSession:
    cookie_value: str
    csrf_token: str
    expires_at: dt.datetime


def open_session(session: Session, user: User) -> NewSession:
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=get_settings().session_hours)
    session.add(
        WebSession(id_hash=_sha256(value), user_id=user.id, csrf_token=csrf, expires_at=expires)
    )
    actor = principal_for(user, None)
    events.record(session, actor, "user.signed_in", "user", user.id, {}, member_id=user.member_id)
    return NewSession(value, csrf, expires)


@dataclass(frozen=True)
class ResolvedSession:
    principal: Principal
    csrf_token: str
    user: User


def resolve_session(session: Session, cookie_value: str) -> ResolvedSession | None:
    row = session.get(WebSession, _sha256(cookie_value))
    if row is None or row.expires_at <= dt.datetime.now(dt.UTC):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    principal = principal_for(user, _member_code(session, user.member_id))
    return ResolvedSession(principal, row.csrf_token, user)


def close_session(session: Session, cookie_value: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id_hash == _sha256(cookie_value)))


@dataclass(frozen=True)
class NewToken:
    id: int
    member: str
    token: str


def create_token(session: Session, actor: Principal, member_code: str, name: str = "") -> NewToken:
    member = session.scalar(select(Member).where(Member.code == member_code))
    if member is None:
        raise NotFound("Unknown member code: {code}", field="member", code=member_code)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tok = ApiToken(member_id=member.id, name=name, secret_hash=_sha256(secret), prefix=secret[:12])
    session.add(tok)
    session.flush()
    events.record(
        session,
        actor,
        "token.created",
        "api_token",
        tok.id,
        {"member": member_code, "name": name},
        member_id=member.id,
    )
    return NewToken(tok.id, member_code, secret)


def revoke_token(session: Session, actor: Principal, token_id: int) -> None:
    tok = session.get(ApiToken, token_id)
    if tok is None:
        raise NotFound("Unknown token: {id}", field="id", id=token_id)
    if tok.revoked_at is None:
        tok.revoked_at = dt.datetime.now(dt.UTC)
        events.record(
            session, actor, "token.revoked", "api_token", tok.id, {}, member_id=tok.member_id
        )


def resolve_token(session: Session, secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    tok = session.scalar(select(ApiToken).where(ApiToken.secret_hash == _sha256(secret)))
    if tok is None or tok.revoked_at is not None:
        return None
    code = _member_code(session, tok.member_id)
    return Principal(
        kind="token",
        label=f"token:{tok.id}",
        role=Role.member_system,
        member_id=tok.member_id,
        member_code=code,
    )
