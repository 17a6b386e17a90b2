"""Background jobs of the union catalogue."""

from __future__ import annotations

from typing import Any

from huey import crontab

from consortia.settings import get_settings
from consortia.tasks import huey

# A load marks the clusters of every batch it commits (about one a second); marks this old
# mean no load is marking now: what is pending was left by a load that crashed or was killed.
QUIET_SECONDS = 60


@huey.task(retries=2, retry_delay=10)
def load_upload(batch_id: int) -> dict[str, Any]:
    """Load an uploaded file; loads are idempotent, so a retry after a crash is safe."""
    from consortia.catalog import service

    summary = service.run_batch(batch_id, get_settings().upload_dir)
    return summary.as_dict()


@huey.periodic_task(crontab(minute="*"))
def index_pending() -> dict[str, Any]:
    """Index the clusters a crashed or killed load left pending (a running load indexes its own
    at its end), so search is never stale for long."""
    from consortia.catalog import service

    return {"indexed": service.index_pending(quiet_seconds=QUIET_SECONDS)}


@huey.on_startup()
def index_pending_on_start() -> None:
    """A consumer that starts (after a crash, say) first indexes what a killed load left; with
    nothing pending this is one count."""
    from consortia.catalog import service

    service.index_pending(quiet_seconds=QUIET_SECONDS)
