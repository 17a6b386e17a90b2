"""Every message the search core can show a reader exists in zh-CN and en."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from consortia.i18n import catalogue
from consortia.search import cql

SEARCH_DIR = Path(cql.__file__).parent
ERRORS = {"CQLError": 1, "QueryTooLong": 0, "QueryError": 0}


def message_literals() -> set[str]:
    found: set[str] = set()
    for path in SEARCH_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                where = ERRORS.get(node.func.id)
                if where is not None and len(node.args) > where:
                    arg = node.args[where]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
    found.update(cql._SYNTAX_MESSAGES.values())
    return found


def test_the_scan_finds_the_messages() -> None:
    found = message_literals()
    assert "Unsupported index: {details}." in found
    assert "The query is too long: at most {limit} characters are allowed, it has {count}." in found
    assert len(found) > 25


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_message_is_translated(lang: str) -> None:
    cat = catalogue(lang)
    missing = sorted(m for m in message_literals() if m not in cat)
    assert missing == []


def test_chinese_messages_keep_their_placeholders() -> None:
    cat = catalogue("zh-CN")
    for msgid in message_literals():
        for name in ("position", "details", "limit", "count", "found", "relation", "index"):
            placeholder = "{" + name + "}"
            assert (placeholder in msgid) == (placeholder in cat[msgid]), (msgid, name)
