"""Background jobs of search: keep the index's in-memory segment current."""

from __future__ import annotations

from typing import Any

from huey import crontab

from consortia.tasks import huey

# The generation seen at the previous tick, per database: a segment is built once the index
# has stood still for a tick (during a load it changes every batch; building then would only
# be retired by the next batch).
_seen: dict[str, int] = {}


@huey.periodic_task(crontab(minute="*"))
def refresh_segment() -> dict[str, Any]:
    """Build the segment of the index if it has none and has not changed for a minute."""
    return refresh()


def refresh() -> dict[str, Any]:
    from consortia.db import get_engine
    from consortia.search import segment

    engine = get_engine()
    with engine.connect() as conn:
        where = segment.directory(conn)
        if where is None:
            return {"segment": None}
        gen = segment.generation(conn)
        key = str(where)
        still = _seen.get(key) == gen
        _seen[key] = gen
        if not still:
            return {"segment": None, "generation": gen, "waiting": True}
        built = segment.build(conn)
    return {"segment": built.as_dict()}
