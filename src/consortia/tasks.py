"""Background jobs (Huey): SQLite storage in embedded mode, Redis when CONSORTIA_REDIS_URL is set.

Start a consumer with ``consortia worker`` (or ``huey_consumer consortia.tasks.huey``). The embedded
``consortia serve`` runs one consumer thread itself so that a single process is all one needs.
"""

from __future__ import annotations

import importlib

from huey import Huey, RedisHuey, SqliteHuey

from consortia.settings import get_settings


def make_huey() -> Huey:
    settings = get_settings()
    if settings.redis_url:
        return RedisHuey("consortia", url=settings.redis_url)
    return SqliteHuey("consortia", filename=str(settings.huey_path))


huey = make_huey()

# Domains register their tasks on import (after `huey` exists: their modules import it).
TASK_MODULES = (
    "consortia.catalog.tasks",
    "consortia.ill.notice_tasks",
    "consortia.ill.peers",
    "consortia.ill.tasks",
    "consortia.search.tasks",
    "consortia.stats.tasks",
)
for _module in TASK_MODULES:
    importlib.import_module(_module)
