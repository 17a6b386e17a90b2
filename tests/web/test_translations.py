"""Every user-facing string exists in zh-CN and en.

The strings are found, not listed: every ``_("...")`` in the templates, every literal message of a
DomainError (``Invalid(...)``, ``NotFound(...)``, ... and any subclass defined anywhere in
src/consortia), and every ``gettext(lang, "...")`` / ``_("...")`` in the Python code. Each must
have a non-empty translation in some ``.po`` file of zh_CN (with Chinese characters in it) and of
en, with the same placeholders. New templates, new errors and new domain catalogues are covered
without touching this file. ``scripts/check-messages`` runs it and prints the missing entries.
"""

from __future__ import annotations

import ast
import re
import string
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

import consortia
from consortia.i18n import LOCALE_DIR, catalogue, catalogue_files
from consortia.web.templating import TEMPLATE_DIR

SRC = Path(consortia.__file__).parent
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
PERCENT_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
# Function names whose first argument is a msgid, besides DomainError and its subclasses.
PY_GETTEXT_NAMES = frozenset({"_", "gettext_lazy", "N_"})


@dataclass(frozen=True)
class Msg:
    msgid: str
    where: str  # file:line, for the failure message
    style: str  # "format" ({name}) for Python, "percent" (%(name)s) for templates


def _template_messages() -> list[Msg]:
    out: list[Msg] = []
    for path in sorted(TEMPLATE_DIR.rglob("*.html")):
        with path.open("rb") as fh:
            # silent=False: a template that does not parse fails here instead of hiding strings.
            found = babel_extract(
                fh,
                ("_", "gettext", "ngettext"),
                [],
                {"trim_blocks": "true", "lstrip_blocks": "true", "silent": "false"},
            )
            for lineno, _func, message, _comments in found:
                ids = message if isinstance(message, tuple) else (message,)
                for msgid in ids:
                    if msgid:
                        rel = path.relative_to(SRC)
                        out.append(Msg(msgid, f"{rel}:{lineno}", "percent"))
    return out


def _python_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _base_names(node: ast.ClassDef) -> set[str]:
    out = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            out.add(base.id)
        elif isinstance(base, ast.Attribute):
            out.add(base.attr)
    return out


def _error_classes(trees: dict[Path, ast.Module]) -> dict[str, bool]:
    """DomainError and every class deriving from it anywhere in the package (by name), each with
    whether its first constructor argument is the message (subclasses may take e.g. a field name
    first and build the message themselves)."""
    classes: dict[str, ast.ClassDef] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node
    message_first: dict[str, bool] = {"DomainError": True}
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            if name in message_first:
                continue
            parents = [b for b in _base_names(node) if b in message_first]
            if not parents:
                continue
            init = next(
                (
                    f
                    for f in node.body
                    if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                    and f.name == "__init__"
                ),
                None,
            )
            if init is None:
                message_first[name] = message_first[parents[0]]
            else:
                params = [a.arg for a in init.args.args[1:]]
                message_first[name] = bool(params) and params[0] == "message"
            changed = True
    return message_first


def _literals(node: ast.expr) -> tuple[list[str], bool]:
    """The string constants an argument can take; False when it is an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value], True
    if isinstance(node, ast.IfExp):
        a, ok_a = _literals(node.body)
        b, ok_b = _literals(node.orelse)
        return a + b, ok_a and ok_b
    if isinstance(node, ast.JoinedStr):
        return [], False
    return [], True  # a variable: resolved below when it names a module constant


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = node.value.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            out[node.target.id] = node.value.value
    return out


def _visible_constants(
    tree: ast.Module, own: dict[str, str], by_module: dict[str, dict[str, str]]
) -> dict[str, str]:
    """A module's own string constants plus those it imports by name from the package."""
    out = dict(own)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in by_module:
            for alias in node.names:
                value = by_module[node.module].get(alias.name)
                if value is not None:
                    out[alias.asname or alias.name] = value
    return out


def _python_messages() -> tuple[list[Msg], list[str]]:
    trees = {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in _python_files()}
    errors = _error_classes(trees)
    by_module = {_module_name(p): _constants(t) for p, t in trees.items()}
    out: list[Msg] = []
    problems: list[str] = []
    for path, tree in trees.items():
        rel = path.relative_to(SRC)
        own = by_module[_module_name(path)]
        visible = _visible_constants(tree, own, by_module)
        # Convention: module constants named R_* (reasons) or MSG_* hold msgids.
        for name, value in own.items():
            if name.startswith(("R_", "MSG_")):
                out.append(Msg(value, f"{rel}:{name}", "format"))
        # An error subclass that builds its own message passes it to super().__init__(...).
        super_calls = {
            id(call)
            for cls in ast.walk(tree)
            if isinstance(cls, ast.ClassDef) and cls.name in errors
            for call in ast.walk(cls)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call)
            and _call_name(call.func.value) == "super"
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            msg_args: list[ast.expr] = []
            if id(node) in super_calls and node.args:
                msg_args.append(node.args[0])
            elif name in errors:
                if errors[name] and node.args:
                    msg_args.append(node.args[0])
                msg_args += [kw.value for kw in node.keywords if kw.arg == "message"]
                # Any argument naming a string constant is a msgid too (e.g. a reason).
                msg_args += [
                    a
                    for a in [*node.args, *(k.value for k in node.keywords)]
                    if isinstance(a, ast.Name) and a.id in visible
                ]
            elif name == "gettext" and len(node.args) >= 2:
                msg_args.append(node.args[1])  # consortia.i18n.gettext(lang, msgid)
            elif name in PY_GETTEXT_NAMES and node.args:
                msg_args.append(node.args[0])
            for arg in msg_args:
                if isinstance(arg, ast.Name):
                    if arg.id in visible:
                        out.append(Msg(visible[arg.id], f"{rel}:{node.lineno}", "format"))
                    continue
                values, literal = _literals(arg)
                if not literal:
                    problems.append(
                        f"{rel}:{node.lineno}: {name}() message is an f-string; "
                        "use a literal msgid with {placeholders} and keyword arguments"
                    )
                for value in values:
                    out.append(Msg(value, f"{rel}:{node.lineno}", "format"))
    return out, problems


def all_messages() -> list[Msg]:
    py, _problems = _python_messages()
    return _template_messages() + py


def _format_names(text: str) -> set[str]:
    try:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}
    except ValueError:
        return {"<unbalanced braces>"}


def _placeholders(text: str, style: str) -> set[str]:
    if style == "percent":
        return set(PERCENT_PLACEHOLDER.findall(text))
    return _format_names(text)


def _po_stub(missing: dict[str, Msg]) -> str:
    lines = []
    for msgid, msg in sorted(missing.items()):
        escaped = msgid.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'#: {msg.where}\nmsgid "{escaped}"\nmsgstr ""\n')
    return "\n".join(lines)


def test_extraction_finds_the_strings_known_today() -> None:
    """Guards the extractor itself: if it found nothing, every other check would pass."""
    ids = {m.msgid for m in all_messages()}
    for expected in (
        "Skip to content",  # base.html
        "Sign in",  # login.html / base.html
        "Suspended",  # _labels.html (inside a dict literal)
        "%(n)s days",  # member.html (with keyword arguments)
        "Please sign in",  # Unauthorized(...) in web/deps.py
        "Your role may not do this",  # Forbidden(...) in web/deps.py
        "Too many failed sign-ins; try again in {minutes} minutes",  # TooManyAttempts(
        "Invalid field: {fields}",  # gettext(lang, ...) in web/app.py
        "Unknown member code: {code}",  # NotFound(...)
    ):
        assert expected in ids, expected
    assert len(ids) > 60


def test_error_messages_are_literal_msgids() -> None:
    _msgs, problems = _python_messages()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_message_is_translated(lang: str) -> None:
    cat = catalogue(lang)
    missing: dict[str, Msg] = {}
    bad: list[str] = []
    for msg in all_messages():
        text = cat.get(msg.msgid, "").strip()
        if not text:
            missing.setdefault(msg.msgid, msg)
            continue
        if lang == "zh-CN" and not CJK.search(text):
            bad.append(f"{msg.where}: zh_CN translation of {msg.msgid!r} has no Chinese: {text!r}")
        want, got = _placeholders(msg.msgid, msg.style), _placeholders(text, msg.style)
        if want != got:
            bad.append(
                f"{msg.where}: placeholders of {msg.msgid!r} are {sorted(want)}, "
                f"the {lang} translation {text!r} has {sorted(got)}"
            )
    folder = lang.replace("-", "_")
    report = ""
    if missing:
        report += (
            f"{len(missing)} message(s) have no {lang} translation; add them to "
            f"src/consortia/locale/{folder}/LC_MESSAGES/<domain>.po:\n\n{_po_stub(missing)}\n"
        )
    assert not missing and not bad, report + "\n".join(bad)


def _entries(lang: str) -> dict[str, dict[str, str]]:
    """msgid -> {file name: msgstr} for every .po file of a language, read strictly."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for path in catalogue_files(lang):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=lang.replace("-", "_"), abort_invalid=True)
        for m in cat:
            if m.id and isinstance(m.id, str):
                out[m.id][path.name] = m.string if isinstance(m.string, str) else ""
    return out


def test_both_languages_have_the_same_msgids() -> None:
    zh, en = _entries("zh-CN"), _entries("en")
    assert catalogue_files("zh-CN") and catalogue_files("en"), LOCALE_DIR
    only_zh = sorted(set(zh) - set(en))
    only_en = sorted(set(en) - set(zh))
    assert not only_zh, f"in zh_CN but not en: {only_zh}"
    assert not only_en, f"in en but not zh_CN: {only_en}"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_msgid_in_two_domain_files_has_one_translation(lang: str) -> None:
    """Two domain files may share a msgid, but must agree: which one wins is file order."""
    clashes = [
        f"{msgid!r}: {files}"
        for msgid, files in _entries(lang).items()
        if len({s for s in files.values() if s}) > 1
    ]
    assert not clashes, "\n".join(clashes)


def test_placeholders_survive_translation_everywhere() -> None:
    """Also the msgids no code uses any more: a wrong placeholder breaks .format() at run time."""
    bad = []
    for lang in ("zh-CN", "en"):
        for msgid, files in _entries(lang).items():
            for fname, text in files.items():
                if not text:
                    continue
                for names in (_format_names, lambda t: set(PERCENT_PLACEHOLDER.findall(t))):
                    if names(msgid) != names(text):
                        bad.append(f"{lang}/{fname}: {msgid!r} -> {text!r}")
    assert not bad, "\n".join(bad)
