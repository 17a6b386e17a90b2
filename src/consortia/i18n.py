"""Translations: Babel ``.po`` catalogues for zh-CN and en, read at start-up.

msgids are English; the English catalogue may reword them. Each domain keeps its own ``.po`` file
per language (``locale/zh_CN/LC_MESSAGES/<domain>.po``); they are read from the text directly so
that no compiled ``.mo`` file has to be kept in the repository.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"


def _folder(lang: str) -> str:
    return lang.replace("-", "_")


def catalogue_files(lang: str) -> list[Path]:
    """Every ``.po`` file of a language: one per domain (messages.po, members.po, ...)."""
    return sorted((LOCALE_DIR / _folder(lang) / "LC_MESSAGES").glob("*.po"))


@lru_cache(maxsize=8)
def catalogue(lang: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in catalogue_files(lang):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=_folder(lang))
        for msg in cat:
            if msg.id and isinstance(msg.id, str) and isinstance(msg.string, str) and msg.string:
                out[msg.id] = msg.string
    return out


def gettext(lang: str, msgid: str) -> str:
    return catalogue(normalize_language(lang)).get(msgid, msgid)


def normalize_language(value: str | None) -> str:
    """Map a tag like ``zh``, ``zh-Hans``, ``zh_CN`` or ``en-GB`` to one we serve."""
    if not value:
        return DEFAULT_LANGUAGE
    v = value.strip().lower().replace("_", "-")
    if v.startswith("zh"):
        return "zh-CN"
    if v.startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> str:
    """Pick zh-CN or en from an Accept-Language header, by quality."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    best: tuple[float, str] | None = None
    for part in accept_language.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        t = tag.strip().lower()
        if t.startswith(("zh", "en")) and (best is None or weight > best[0]):
            best = (weight, normalize_language(t))
    return best[1] if best else DEFAULT_LANGUAGE
