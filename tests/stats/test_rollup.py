"""The roll-ups' reading of the event log: nothing missed when ids commit out of order (as on
PostgreSQL), nothing counted twice, nothing to do when nothing is new."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from consortia.events.models import Event
from consortia.stats import rollup
from consortia.stats.models import RequestRollup, TurnaroundRollup


def _event(
    session: Session, event_id: int, action: str, request: int, at: dt.datetime, **payload: Any
) -> None:
    # What the resource-sharing service writes, with the id a late transaction would have had.
    body = {"borrower": 1, "lender": 2, "service": "Copy", "lang": "chinese", **payload}
    session.execute(
        insert(Event).values(
            id=event_id,
            at=at,
            actor="test",
            action=action,
            entity_type="ill_request",
            entity_id=str(request),
            member_id=1,
            payload=body,
        )
    )
    session.commit()


def _day_counts(session: Session) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(RequestRollup.period, RequestRollup.requests, RequestRollup.transfers).where(
            RequestRollup.grain == "d"
        )
    )
    return {str(p): (r, t) for p, r, t in rows}


def test_an_event_committed_late_below_the_mark_is_still_counted(session: Session) -> None:
    assert rollup.refresh(session) is None  # an empty log: nothing to do
    t = dt.datetime(2016, 10, 17, 2, 0, tzinfo=dt.UTC)  # 10:00 in China
    # Event 3 commits first; 1 and 2 are still in flight.
    _event(session, 3, "ill.request.created", 901, t)
    first = rollup.catch_up(session)
    session.commit()
    assert (first.events_applied, first.last_event_id, first.gaps) == (1, 3, 2)
    assert not rollup.is_current(session)  # open gaps: look again
    assert _day_counts(session) == {"2016-10-17": (1, 0)}
    _event(session, 1, "ill.request.created", 902, t)
    _event(session, 2, "ill.request.shipped", 901, t + dt.timedelta(hours=5, minutes=1))
    second = rollup.refresh(session)
    assert second is not None
    assert (second.events_applied, second.gaps) == (2, 0)
    assert _day_counts(session) == {"2016-10-17": (2, 1)}
    hours = session.execute(
        select(TurnaroundRollup.hours, TurnaroundRollup.n).where(TurnaroundRollup.grain == "m")
    ).all()
    assert hours == [(6, 1)]
    assert rollup.is_current(session)
    assert rollup.refresh(session) is None
    # Counted once: running again changes nothing.
    rollup.catch_up(session)
    session.commit()
    assert _day_counts(session) == {"2016-10-17": (2, 1)}
    assert rollup.state(session).events_applied == 3


def test_a_gap_that_never_fills_is_given_up_after_the_wait(session: Session) -> None:
    t = dt.datetime(2016, 10, 17, 2, 0, tzinfo=dt.UTC)
    _event(session, 5, "ill.request.created", 7, t)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert rollup.catch_up(session, now=now).gaps == 4
    session.commit()
    assert rollup.catch_up(session, now=now + dt.timedelta(minutes=5)).gaps == 4
    session.commit()
    later = rollup.catch_up(session, now=now + rollup.GAP_WAIT + dt.timedelta(seconds=1))
    session.commit()
    assert later.gaps == 0
    assert rollup.is_current(session)


def test_other_events_are_read_past_but_not_counted(session: Session) -> None:
    t = dt.datetime(2016, 10, 17, 2, 0, tzinfo=dt.UTC)
    _event(session, 1, "ill.request.routed", 1, t)
    _event(session, 2, "ill.request.created", 1, t)
    session.execute(
        insert(Event).values(
            id=3,
            at=t,
            actor="test",
            action="member.updated",
            entity_type="member",
            entity_id="1",
            payload={},
        )
    )
    session.commit()
    done = rollup.refresh(session)
    assert done is not None
    assert (done.events_read, done.events_applied, done.last_event_id) == (3, 1, 3)
    assert _day_counts(session) == {"2016-10-17": (1, 0)}


def test_catch_ups_running_at_once_count_each_event_once(session: Session) -> None:
    import threading

    from consortia.db import session_factory

    t = dt.datetime(2016, 10, 17, 2, 0, tzinfo=dt.UTC)
    _event(session, 1, "ill.request.created", 1, t)
    assert rollup.refresh(session) is not None  # the state row exists from here on
    for i in range(2, 302):
        _event(session, i, "ill.request.created", i, t)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        try:
            with session_factory()() as s:
                start.wait()
                rollup.refresh(s)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    session.expire_all()
    assert _day_counts(session) == {"2016-10-17": (301, 0)}
    assert rollup.state(session).events_applied == 301
