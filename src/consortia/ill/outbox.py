"""Outgoing ISO 18626 delivery: send, and retry with back-off until the peer has answered.

"Never lose a message" is kept by the table the lead will add (one row per outgoing message,
written in the same transaction as the state change that caused it) and by this module's rules:

- a message leaves the outbox only when the peer *answered* with a confirmation: OK →
  ``DELIVERED``; ERROR → ``REJECTED`` (kept, with the errorData, for staff to act on; resending
  the same bytes would get the same answer);
- any other outcome (connection refused, time-out, HTTP 5xx, an answer that is not an ISO 18626
  confirmation) is a ``DeliveryFailed``: the row stays ``PENDING`` and ``next_attempt_at`` moves
  out by exponential back-off with jitter, capped (default 30 s, doubling, at most 6 h). It is
  never dropped; after ``ATTENTION_AFTER`` attempts ``needs_attention`` flags it for staff.
- the peer recognises a resent message by its unchanged bytes (same header timestamp, same
  ids), so retrying is safe: the receiving side answers a retry idempotently
  (``iso18626.message_key``).

Interface for the DB-backed worker (``ill/service.py`` / ``ill/tasks.py``)::

    msg = OutboxMessage.new(url, body, kind=..., message_key=..., now=now)
    due = [rows where state == PENDING and next_attempt_at <= now]  # FOR UPDATE SKIP LOCKED
    for row in due:
        updated, confirmation = attempt(row, now=now)   # never raises for network trouble
        # store updated.state / attempts / next_attempt_at / last_error; act on confirmation

``send(url, body, timeout)`` is the one network call; it returns the parsed confirmation or
raises ``DeliveryFailed`` (retry later) or ``PeerRejected`` (the peer said ERROR).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import random
from dataclasses import dataclass

import httpx

from consortia.ill import iso18626 as iso

BASE_DELAY = dt.timedelta(seconds=30)
MAX_DELAY = dt.timedelta(hours=6)
JITTER = 0.2  # +-20 %: peers that went down together do not come back to a thundering herd
ATTENTION_AFTER = 10  # attempts; about 4 hours of trying with the defaults
DEFAULT_TIMEOUT = 30.0
MAX_ANSWER_BYTES = 1_000_000
CONTENT_TYPE = "application/xml; charset=utf-8"


class DeliveryFailed(Exception):
    """The message may not have arrived: no usable answer. Retry later (same bytes)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"delivery to {url} failed: {reason}")


class PeerRejected(Exception):
    """The peer answered with messageStatus ERROR; ``errors`` hold its errorData."""

    def __init__(self, url: str, confirmation: iso.Confirmation) -> None:
        self.url = url
        self.confirmation = confirmation
        self.errors = confirmation.errors
        first = confirmation.errors[0] if confirmation.errors else None
        detail = f"{first.error_type}: {first.error_value or ''}" if first else "no errorData"
        super().__init__(f"{url} refused the message: {detail}")


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OutboxMessage:
    """One outgoing message as the outbox table will hold it."""

    url: str
    body: bytes
    kind: iso.MessageKind
    message_key: str
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int = 0
    state: OutboxState = OutboxState.PENDING
    last_error: str | None = None
    last_attempt_at: dt.datetime | None = None
    id: int | None = None

    @classmethod
    def new(
        cls,
        url: str,
        body: bytes,
        *,
        kind: iso.MessageKind,
        message_key: str,
        now: dt.datetime,
    ) -> OutboxMessage:
        return cls(url, body, kind, message_key, created_at=now, next_attempt_at=now)

    @property
    def needs_attention(self) -> bool:
        return self.state is OutboxState.REJECTED or (
            self.state is OutboxState.PENDING and self.attempts >= ATTENTION_AFTER
        )


def retry_delay(
    attempts: int,
    *,
    base: dt.timedelta = BASE_DELAY,
    cap: dt.timedelta = MAX_DELAY,
    jitter: float = JITTER,
    rng: random.Random | None = None,
) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt (1 = the first failure).

    ``base * 2**(attempts-1)``, capped at ``cap``, then spread by +-``jitter`` — but never
    beyond ``cap`` and never below ``base / 2``.
    """
    if attempts < 1:
        return dt.timedelta()
    exponent = min(attempts - 1, 40)  # 2**40 * 30 s is far past any cap; avoids overflow
    raw = min(base.total_seconds() * (2**exponent), cap.total_seconds())
    spread = (rng or random).uniform(-jitter, jitter)
    seconds = min(raw * (1 + spread), cap.total_seconds())
    return dt.timedelta(seconds=max(seconds, base.total_seconds() / 2))


def next_attempt_at(
    attempts: int, now: dt.datetime, *, rng: random.Random | None = None
) -> dt.datetime:
    """When to try again after ``attempts`` failed attempts."""
    return now + retry_delay(attempts, rng=rng)


def send(
    url: str,
    body: bytes,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    client: httpx.Client | None = None,
) -> iso.Confirmation:
    """POST one ISO 18626 document and return the peer's confirmation (messageStatus OK).

    Raises ``DeliveryFailed`` when there is no usable answer and ``PeerRejected`` when the
    peer answered ERROR. Redirects are not followed: an endpoint is configured, not discovered.
    """
    headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/xml, text/xml"}
    try:
        if client is None:
            with httpx.Client(timeout=timeout, follow_redirects=False) as own:
                response = own.post(url, content=body, headers=headers)
        else:
            response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryFailed(url, f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(url, f"{type(exc).__name__}: {exc}"[:300]) from None
    content = response.content
    if len(content) > MAX_ANSWER_BYTES:
        raise DeliveryFailed(url, f"answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        answer = iso.parse(content)
    except iso.Iso18626Error as exc:
        raise DeliveryFailed(
            url, f"HTTP {response.status_code}, not an ISO 18626 answer ({exc.value})"[:300]
        ) from None
    if not isinstance(
        answer,
        iso.RequestConfirmation
        | iso.SupplyingAgencyMessageConfirmation
        | iso.RequestingAgencyMessageConfirmation,
    ):
        raise DeliveryFailed(url, f"answered with a {answer.kind}, not a confirmation")
    if not iso.is_ok(answer):
        raise PeerRejected(url, answer)
    return answer


def attempt(
    msg: OutboxMessage,
    *,
    now: dt.datetime,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
) -> tuple[OutboxMessage, iso.Confirmation | None]:
    """Try one delivery; return the row as it must be stored, and the confirmation if any.

    Never raises for network or peer trouble: that is recorded in the returned row.
    """
    if msg.state is not OutboxState.PENDING:
        return msg, None
    tried = dataclasses.replace(msg, attempts=msg.attempts + 1, last_attempt_at=now)
    try:
        confirmation = send(msg.url, msg.body, timeout, client=client)
    except DeliveryFailed as exc:
        return (
            dataclasses.replace(
                tried,
                last_error=exc.reason,
                next_attempt_at=next_attempt_at(tried.attempts, now, rng=rng),
            ),
            None,
        )
    except PeerRejected as exc:
        return (
            dataclasses.replace(tried, state=OutboxState.REJECTED, last_error=str(exc)),
            exc.confirmation,
        )
    return dataclasses.replace(tried, state=OutboxState.DELIVERED, last_error=None), confirmation
