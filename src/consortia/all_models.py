"""Import every domain's models so that Base.metadata knows every table (Alembic, tests)."""

from consortia.accounts import models as accounts_models
from consortia.catalog import models as catalog_models
from consortia.events import models as events_models
from consortia.ill import models as ill_models
from consortia.members import models as members_models
from consortia.search import models as search_models
from consortia.stats import models as stats_models

__all__ = [
    "accounts_models",
    "catalog_models",
    "events_models",
    "ill_models",
    "members_models",
    "search_models",
    "stats_models",
]
