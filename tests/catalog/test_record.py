"""The stored form of a normalised record: ``record_from_dict(rec.to_dict())`` gives the record
back, on the real records of the labelled set (tests/data/dedup) and through JSON."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from consortia.catalog.record import Classification, Isbn, Name, NormalizedRecord, record_from_dict
from tests.data.dedup.labelled import load_records


def test_real_records_round_trip_through_json() -> None:
    records = load_records()
    assert len(records) > 4000
    for rec in records:
        back = record_from_dict(orjson.loads(orjson.dumps(rec.to_dict())))
        assert back == rec
        assert back.to_dict() == rec.to_dict()
        assert all(type(n) is Name for n in back.names)
        assert all(type(i) is Isbn for i in back.isbns)
        assert all(type(c) is Classification for c in back.classifications)
    # Parts decoded are as frozen and hashable as constructed ones.
    named = next(r for r in records if r.names)
    back = record_from_dict(named.to_dict())
    assert hash(back.names[0]) == hash(named.names[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.names[0].name = "x"  # type: ignore[misc]


def test_older_and_newer_stored_forms() -> None:
    """A record stored by another version: missing fields take their defaults, unknown keys
    are ignored at the top, lists are fresh (never shared between records)."""
    a = record_from_dict({"record_id": "1", "flavour": "marc21", "title": "T", "future": 1})
    assert a == NormalizedRecord(record_id="1", flavour="marc21", title="T")
    b = record_from_dict({"record_id": "2", "flavour": "marc21"})
    a.subjects.append("x")
    assert b.subjects == [] and a.names == [] and a.edition_number is None
    c = record_from_dict(
        {"record_id": "3", "flavour": "unimarc", "names": [{"name": "谭其骧"}], "isbns": []}
    )
    assert c.names == [Name("谭其骧")]
    with pytest.raises(TypeError):
        record_from_dict({"record_id": "4", "flavour": "marc21", "names": [{"nom": "x"}]})
