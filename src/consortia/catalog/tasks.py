"""Background jobs of the union catalogue."""

from __future__ import annotations

from typing import Any

from consortia.settings import get_settings
from consortia.tasks import huey


@huey.task(retries=2, retry_delay=10)
def load_upload(batch_id: int) -> dict[str, Any]:
    """Load an uploaded file; loads are idempotent, so a retry after a crash is safe."""
    from consortia.catalog import service

    summary = service.run_batch(batch_id, get_settings().upload_dir)
    return summary.as_dict()
