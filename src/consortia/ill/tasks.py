"""Resource sharing's timers as Huey periodic tasks.

Any number of consumers may run them at once: each due request is taken in its own transaction,
locked with SKIP LOCKED on PostgreSQL and re-checked inside it, so no request is advanced twice
(``service._run_timer``). On SQLite the single writer serialises them and the version check
turns a second attempt into nothing.
"""

from __future__ import annotations

from typing import Any

from huey import crontab

from consortia.db import session_factory, session_scope
from consortia.ill import service
from consortia.tasks import huey

FILE_BATCH = 500  # delivered documents whose files one transaction removes


def _summary(report: service.TimerReport) -> dict[str, Any]:
    return {
        "checked": report.checked,
        "advanced": report.advanced,
        "skipped": report.skipped,
        "events": dict(report.events),
    }


@huey.periodic_task(crontab(minute="*/10"))
def ill_expire_unanswered() -> dict[str, Any]:
    """Lenders past their days-to-respond (working days): the next candidate is asked."""
    return _summary(service.expire_unanswered(session_factory()))


@huey.periodic_task(crontab(minute="5,35"))
def ill_loan_timers() -> dict[str, Any]:
    """Loans coming due and overdue (reminders, Overdue); delivered copies nobody confirmed."""
    return _summary(service.loan_timers(session_factory()))


@huey.periodic_task(crontab(minute="*/15"))
def ill_expire_links() -> dict[str, Any]:
    """Download links past their time are marked expired, once each."""
    return {"expired": service.expire_links(session_factory())}


@huey.periodic_task(crontab(minute="40"))
def ill_remove_expired_files() -> dict[str, Any]:
    """Delivered documents nobody can download any more (link time over, or used up): their
    files are deleted, the rows stay for the statistics, each removal an event. A batch per
    transaction until none is left."""
    from consortia.ill import delivery

    removed = 0
    while True:
        with session_scope() as session:
            done = delivery.remove_expired_files(session, service.SYSTEM_TIMER, limit=FILE_BATCH)
        removed += done
        if done < FILE_BATCH:
            return {"removed": removed}


@huey.periodic_task(crontab(hour="3", minute="20"))
def ill_anonymise() -> dict[str, Any]:
    """Requests closed over a year ago forget their reader (statistics keep the counts)."""
    return {"anonymised": service.anonymise_closed(session_factory())}
