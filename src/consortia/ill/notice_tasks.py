"""Background job of resource sharing's e-mail notices: every minute, write the notices of the
request events since the last run (``ill.notices.notify_from_events``; the mark is kept in the
job store) and send what waits (``ill.notices.send_pending``)."""

from __future__ import annotations

from huey import crontab

from consortia.tasks import huey

MARK_KEY = "ill.notices.event_mark"


@huey.periodic_task(crontab(minute="*"))
def send_notices() -> dict[str, int]:
    """Several consumers are safe: notices are written once (dedupe key), rows are claimed with
    SKIP LOCKED on PostgreSQL and each is marked sent in its own commit."""
    from consortia.db import session_factory, session_scope
    from consortia.ill.notices import notify_from_events, send_pending

    mark = huey.get(MARK_KEY, peek=True) or 0
    with session_scope() as session:
        last = notify_from_events(session, after_id=int(mark))
    huey.put(MARK_KEY, last)
    report = send_pending(session_factory())
    return {"mark": last, "sent": report.sent, "failed": report.failed, "skipped": report.skipped}
