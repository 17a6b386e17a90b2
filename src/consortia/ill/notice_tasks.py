"""Background job sending resource sharing's e-mail notices (``ill.notices.send_pending``)."""

from __future__ import annotations

from huey import crontab

from consortia.tasks import huey


@huey.periodic_task(crontab(minute="*"))
def send_notices() -> dict[str, int]:
    """Every minute: send what waits. Several consumers are safe (rows are claimed with SKIP
    LOCKED on PostgreSQL; a notice is marked sent in its own commit)."""
    from consortia.db import session_factory
    from consortia.ill.notices import send_pending

    report = send_pending(session_factory())
    return {"sent": report.sent, "failed": report.failed, "skipped": report.skipped}
