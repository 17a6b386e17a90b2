"""The statistics roll-ups' upkeep as a Huey periodic task: every minute, the events since the
last run are folded in, so that a report finds little to catch up on (``rollup.refresh``), and
the overlap roll-up is rebuilt when the catalogue changed (``overlap.refresh``), so that the
first overlap report after a catalogue load need not wait for it.

Several consumers may run it at once: a catch-up first takes the state row's lock, so the
second waits and then finds nothing new.
"""

from __future__ import annotations

from typing import Any

from huey import crontab

from consortia.db import session_scope
from consortia.stats import overlap, rollup
from consortia.tasks import huey


@huey.periodic_task(crontab(minute="*"))
def stats_catch_up() -> dict[str, Any]:
    """Fold the new request events into the roll-ups; rebuild the overlap roll-up if due."""
    with session_scope() as session:
        built = overlap.refresh(session)
    with session_scope() as session:
        if rollup.is_current(session):
            return {"events_read": 0, "overlap_built": built is not None}
        done = rollup.catch_up(session)
    return {
        "overlap_built": built is not None,
        "events_read": done.events_read,
        "events_applied": done.events_applied,
        "last_event_id": done.last_event_id,
        "gaps": done.gaps,
    }
