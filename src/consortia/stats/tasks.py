"""The statistics roll-ups' upkeep as a Huey periodic task: every minute, the events since the
last run are folded in, so that a report finds little to catch up on (``rollup.refresh``).

Several consumers may run it at once: a catch-up first takes the state row's lock, so the
second waits and then finds nothing new.
"""

from __future__ import annotations

from typing import Any

from huey import crontab

from consortia.db import session_scope
from consortia.stats import rollup
from consortia.tasks import huey


@huey.periodic_task(crontab(minute="*"))
def stats_catch_up() -> dict[str, Any]:
    """Fold the new request events into the roll-ups."""
    with session_scope() as session:
        if rollup.is_current(session):
            return {"events_read": 0}
        done = rollup.catch_up(session)
    return {
        "events_read": done.events_read,
        "events_applied": done.events_applied,
        "last_event_id": done.last_event_id,
        "gaps": done.gaps,
    }
