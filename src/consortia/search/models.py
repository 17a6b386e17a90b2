"""Tables of the search index: one document per cluster, and its facet values.

The full-text part lives beside these tables and is not in the metadata (it is dialect DDL made
by the migration, every name starting with ``search_fts``):

* SQLite: ``search_fts``, an FTS5 external-content table over ``search_documents`` (tokenizer
  ``ascii``: the columns already hold ``cjk.index_tokens`` joined by spaces), kept in step by
  triggers, and ``search_fts_vocab`` (fts5vocab) for SRU scan.
* PostgreSQL: ``search_fts`` (cluster_id, tsv tsvector with weights A title, B author,
  C subject, D the rest) with a GIN index; ``search_fts_terms`` caches the vocabulary for scan.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from consortia.db import Base


class SearchDocument(Base):
    """What the index knows of a cluster: token text per column, and the sort keys."""

    __tablename__ = "search_documents"
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # Space-joined tokens (consortia.search.cjk.index_tokens), one column per ranked field.
    title: Mapped[str] = mapped_column(Text, nullable=False, default="")
    author: Mapped[str] = mapped_column(Text, nullable=False, default="")
    subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    publisher: Mapped[str] = mapped_column(Text, nullable=False, default="")
    rest: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Keyword and facet tokens: isbn…, issn…, lang…, mem…, reg…, cls…, year tokens, "zall".
    keys: Mapped[str] = mapped_column(Text, nullable=False, default="")
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sort_title: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    sort_author: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    sort_publisher: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    # What a result list shows of the cluster (index.display_fields, JSON): a page of hits
    # reads this rather than decoding whole merged records with their provenance.
    display: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")


class SearchFacet(Base):
    """One facet value of a cluster (a cluster has several languages, members, regions)."""

    __tablename__ = "search_facets"
    __table_args__ = ({"sqlite_with_rowid": False},)

    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("search_documents.cluster_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    facet: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(100), primary_key=True)


class SearchState(Base):
    """One row: ``generation`` advances with every change to ``search_documents`` (triggers on
    SQLite), so an in-memory segment of the index knows whether it is still exact."""

    __tablename__ = "search_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
