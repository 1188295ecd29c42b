"""The Swedish catalog in ``django_pagero_oauth/locale``: real pages and messages come out in
Swedish, the shipped ``.mo`` matches the ``.po``, and the ``.po`` is complete and clean.

The language is activated in-process with ``translation.override`` (no ``LocaleMiddleware``
needed): that is what a project's ``LocaleMiddleware`` or ``LANGUAGE_CODE = "sv"`` does too.
"""

from __future__ import annotations

import gettext as gnu_gettext
import io
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.core.management import call_command, load_command_class
from django.db.models import Field
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import translation

import django_pagero_oauth
from django_pagero_oauth import explain
from django_pagero_oauth.admin import PageroTokenAdmin
from django_pagero_oauth.models import PageroToken, TokenHealth

LOCALE_DIR = Path(django_pagero_oauth.__file__).resolve().parent / "locale"
PO_FILE = LOCALE_DIR / "sv" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")
CHANGELIST = reverse("admin:django_pagero_oauth_pagerotoken_changelist")


# --- a small .po reader ---------------------------------------------------------------------


@dataclass
class Entry:
    """One catalog entry. ``msgstr`` holds one string, or one per plural form."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    line: int = 0

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")\s*$")


def _unquote(quoted: str, line: int) -> str:
    """The value of one C-style quoted string as gettext writes it."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(f"line {line}: not a quoted string: {quoted!r}")
    body, out, index = quoted[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1 : index + 2]
            if escaped not in _ESCAPES:
                raise ValueError(f"line {line}: unknown escape \\{escaped}")
            out.append(_ESCAPES[escaped])
            index += 2
        elif char == '"':
            raise ValueError(f"line {line}: unescaped quote in {quoted!r}")
        else:
            out.append(char)
            index += 1
    return "".join(out)


def parse_po(text: str) -> tuple[Entry, list[Entry]]:
    """``(header, entries)`` of a .po file: msgctxt, plurals, multi-line strings, flags and
    obsolete (``#~``) entries."""
    entries: list[Entry] = []
    current = Entry()
    target: tuple[str, int] | None = None  # the keyword the next continuation line extends
    started = False

    def finish() -> None:
        nonlocal current, started, target
        if started:
            entries.append(current)
        current, started, target = Entry(), False, None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        if line.startswith("#") or (obsolete and line.startswith("|")):
            if started and target is not None and current.msgstr:
                finish()  # a comment starts the next entry
            if line.startswith("#,"):
                current.flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            continue
        if not line:
            finish()
            continue
        match = _KEYWORD.match(line)
        if match:
            keyword, index, quoted = match.groups()
            if keyword in ("msgctxt", "msgid") and current.msgstr:
                finish()  # no blank line between two entries
            if not started:
                current.line, started = number, True
            current.obsolete = current.obsolete or obsolete
            value = _unquote(quoted, number)
            if keyword == "msgctxt":
                current.msgctxt, target = value, ("msgctxt", 0)
            elif keyword == "msgid":
                current.msgid, target = value, ("msgid", 0)
            elif keyword == "msgid_plural":
                current.msgid_plural, target = value, ("msgid_plural", 0)
            else:
                position = int(index) if index is not None else 0
                if position != len(current.msgstr):
                    raise ValueError(f"line {number}: msgstr[{position}] out of order")
                current.msgstr.append(value)
                target = ("msgstr", position)
        elif line.startswith('"'):
            if target is None:
                raise ValueError(f"line {number}: a string continues nothing")
            value = _unquote(line, number)
            name, position = target
            if name == "msgstr":
                current.msgstr[position] += value
            else:
                setattr(current, name, (getattr(current, name) or "") + value)
        else:
            raise ValueError(f"line {number}: cannot parse {raw!r}")
    finish()
    if not entries or entries[0].msgid != "" or entries[0].msgctxt is not None:
        raise ValueError("the catalog has no header entry")
    return entries[0], entries[1:]


def header_fields(header: Entry) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in header.msgstr[0].splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}


@pytest.fixture(scope="module")
def catalog() -> tuple[Entry, list[Entry]]:
    return parse_po(PO_FILE.read_text(encoding="utf-8"))


def test_the_parser_reads_what_gettext_writes() -> None:
    header, entries = parse_po(
        'msgid ""\nmsgstr ""\n"Language: sv\\n"\n\n'
        '#, python-format\nmsgid ""\n"a %(x)s "\n"\\"b\\"\\n"\nmsgstr "c %(x)s\\\\"\n\n'
        'msgctxt "menu"\nmsgid "one"\nmsgid_plural "many"\nmsgstr[0] "en"\nmsgstr[1] "flera"\n'
        '#, fuzzy\nmsgid "old"\nmsgstr "gammal"\n\n#~ msgid "gone"\n#~ msgstr "borta"\n'
    )
    assert header_fields(header) == {"Language": "sv"}
    first, plural, fuzzy, gone = entries
    assert (first.msgid, first.msgstr, first.flags) == (
        'a %(x)s "b"\n',
        ["c %(x)s\\"],
        {"python-format"},
    )
    assert plural.key == ("menu", "one", "many") and plural.msgstr == ["en", "flera"]
    assert fuzzy.flags == {"fuzzy"} and fuzzy.msgstr == ["gammal"]
    assert gone.obsolete and gone.msgid == "gone"
    with pytest.raises(ValueError, match="unknown escape"):
        parse_po('msgid ""\nmsgstr ""\n\nmsgid "a\\q"\nmsgstr "b"\n')


# --- (a) what users see -------------------------------------------------------------------


def test_the_callbacks_messages_are_swedish(user_client: Client) -> None:
    """The real error page of a denied login, and of its replay, under Swedish."""
    start = user_client.get(reverse("pagero_oauth:login"))
    assert start.status_code == 302
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    callback = reverse("pagero_oauth:callback")
    with translation.override("sv"):
        denied = user_client.get(callback, {"state": state, "error": "access_denied"})
        replayed = user_client.get(callback, {"state": state, "error": "access_denied"})
    html = denied.content.decode()
    assert denied.status_code == 400
    assert '<html lang="sv">' in html
    assert "<h1>Anslutningen till Pagero misslyckades</h1>" in html
    assert "Anslutningen till Pagero avbröts eller nekades." in html
    assert ">Försök igen</a>" in html
    assert "cancelled or denied" not in html
    assert replayed.status_code == 400
    assert "Den här inloggningen är okänd eller har redan använts." in replayed.content.decode()


def test_the_views_messages_are_marked_and_translated() -> None:
    """``gettext_noop`` marks them; the view translates them when it answers."""
    with translation.override("sv"):
        assert translation.gettext(explain.AUTHORIZATION_ERROR_MESSAGES["access_denied"]) == (
            "Anslutningen till Pagero avbröts eller nekades."
        )
        assert translation.gettext(explain.UNKNOWN_AUTHORIZATION_ERROR) == (
            "Pagero kunde inte ansluta ditt konto. Försök igen."
        )
    with translation.override("en"):
        assert translation.gettext(explain.AUTHORIZATION_ERROR_MESSAGES["access_denied"]) == (
            "The connection to Pagero was cancelled or denied."
        )


def test_the_disconnect_page_is_swedish(user_client: Client) -> None:
    with translation.override("sv"):
        response = user_client.get(reverse("pagero_oauth:disconnect"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Koppla från Pagero</title>" in html
    assert "Du är inte ansluten till Pagero." in html
    assert ">Tillbaka</a>" in html


@pytest.mark.parametrize(
    ("seconds", "sentence"),
    [
        (1, "Försök igen om 1 sekund."),
        (30, "Försök igen om 30 sekunder."),
    ],
)
def test_the_unavailable_page_has_swedish_plurals(seconds: int, sentence: str) -> None:
    with translation.override("sv"):
        html = render_to_string("django_pagero_oauth/unavailable.html", {"retry_after": seconds})
    assert "<h1>Pagero går inte att nå</h1>" in html
    assert f"Pagero Online går inte att nå just nu. {sentence}" in html


def verbose_name(field_name: str) -> Any:
    field = PageroToken._meta.get_field(field_name)
    assert isinstance(field, Field)
    return field.verbose_name


def test_the_model_and_app_names_are_swedish() -> None:
    meta = PageroToken._meta
    with translation.override("sv"):
        assert str(meta.verbose_name) == "Pagero-token"
        assert str(meta.verbose_name_plural) == "Pagero-tokens"
        assert str(verbose_name("refresh_token")) == "förnyelsetoken"
        assert str(verbose_name("fingerprint")) == "fingeravtryck"
        assert str(TokenHealth("refresh_token_expired").label) == "Förnyelsetoken har gått ut"
        assert str(PageroToken.Status("active").label) == "Aktiv"
        assert str(PageroToken(user_id=7)) == "Pagero-anslutning för användare #7"
        app_name = apps.get_app_config("django_pagero_oauth").verbose_name
        assert str(app_name) == "Anslutningar till Pagero Online"
    with translation.override("en"):
        assert str(meta.verbose_name) == "Pagero token"


def test_the_admin_is_swedish(admin_client: Client, user: Any, pagero_token_factory: Any) -> None:
    token = pagero_token_factory(user)
    with translation.override("sv"):
        assert str(PageroTokenAdmin.refresh_now.short_description) == "Förnya nu"  # type: ignore[attr-defined]
        assert str(PageroTokenAdmin.revoke.short_description) == "Återkalla"  # type: ignore[attr-defined]
        changelist = admin_client.get(CHANGELIST).content.decode()
        change = admin_client.get(
            reverse("admin:django_pagero_oauth_pagerotoken_change", args=[token.pk])
        ).content.decode()
    for text in ("Förnya nu", "Återkalla", "Går ut inom 30 dagar", "Förnyelsetoken går ut"):
        assert text in changelist
    assert "Senast förnyad" in changelist
    for text in (
        "Åtkomsttoken: avkodad, inte verifierad",
        "Nyttolast",
        "Giltighetstider",
        "Åtkomsttoken går ut",
    ):
        assert text in change
    assert "Refresh now" not in changelist and "Payload" not in change


def test_a_management_command_speaks_swedish(db: None) -> None:
    out = io.StringIO()
    with translation.override("sv"):
        call_command("pagero_prune_tokens", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Skulle ta bort 0 Pagero-tokens ")


@pytest.mark.parametrize("name", ["pagero_check", "pagero_prune_tokens", "pagero_refresh_tokens"])
def test_a_commands_help_follows_the_active_language(name: str) -> None:
    """``help`` is lazy: one command object answers ``--help`` in each language in turn."""
    command = load_command_class("django_pagero_oauth", name)
    helps = {}
    for language in ("sv", "en", "sv"):
        with translation.override(language):
            helps.setdefault(language, set()).add(
                command.create_parser("manage.py", name).format_help()
            )
    assert len(helps["sv"]) == 1 and helps["sv"] != helps["en"]
    (swedish,), (english,) = helps["sv"], helps["en"]
    assert "Avslutningskoder" in swedish and "Exit" not in swedish
    assert "Exit" in english and "Avslutningskoder" not in english


# --- (b) the shipped .mo is the compiled .po ----------------------------------------------


def test_every_entry_translates_through_django(catalog: tuple[Entry, list[Entry]]) -> None:
    """A .po edited without ``compilemessages`` fails here."""
    _header, entries = catalog
    wrong = []
    with translation.override("sv"):
        for entry in entries:
            if entry.obsolete:
                continue
            if entry.msgid_plural is None:
                cases = [(entry.msgstr[0], _translate(entry, 1))]
            else:
                # Swedish: form 0 for n == 1, form 1 otherwise.
                cases = [(entry.msgstr[0], _translate(entry, 1))]
                cases += [(entry.msgstr[1], _translate(entry, n)) for n in (0, 2, 30)]
            wrong += [(entry.msgid, expected, got) for expected, got in cases if expected != got]
    assert not wrong, f"run compilemessages; the .mo differs from the .po: {wrong[:5]}"


def _translate(entry: Entry, n: int) -> str:
    if entry.msgid_plural is None:
        if entry.msgctxt is not None:
            return translation.pgettext(entry.msgctxt, entry.msgid)
        return translation.gettext(entry.msgid)
    if entry.msgctxt is not None:
        return translation.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
    return translation.ngettext(entry.msgid, entry.msgid_plural, n)


def test_the_mo_holds_exactly_the_po_entries(catalog: tuple[Entry, list[Entry]]) -> None:
    """No string dropped from the .po lingers in the .mo (read alone, not merged by Django)."""
    _header, entries = catalog
    with MO_FILE.open("rb") as mo:
        compiled: dict[Any, str] = gnu_gettext.GNUTranslations(mo)._catalog  # type: ignore[attr-defined]

    def mo_key(entry: Entry) -> str:
        return entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"

    expected: dict[Any, str] = {}
    for entry in entries:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        if entry.msgid_plural is None:
            expected[mo_key(entry)] = entry.msgstr[0]
        else:
            expected.update({(mo_key(entry), i): s for i, s in enumerate(entry.msgstr)})
    compiled = {key: value for key, value in compiled.items() if key != ""}
    assert compiled == expected


# --- (c) the .po is finished --------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[#0 +-]*\d*(?:\.\d+)?[sdfgrxXi%]")


def test_every_entry_is_translated_and_none_is_fuzzy(catalog: tuple[Entry, list[Entry]]) -> None:
    header, entries = catalog
    assert "fuzzy" not in header.flags
    assert entries, "the catalog is empty"
    untranslated = [e.msgid for e in entries if not all(e.msgstr) or not e.msgstr]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    obsolete = [e.msgid for e in entries if e.obsolete]
    assert not untranslated, f"untranslated: {untranslated}"
    assert not fuzzy, f"fuzzy: {fuzzy}"
    assert not obsolete, f"obsolete (#~) entries: {obsolete}"
    for entry in entries:
        assert len(entry.msgstr) == (1 if entry.msgid_plural is None else 2), entry.msgid


def test_placeholders_are_kept(catalog: tuple[Entry, list[Entry]]) -> None:
    """Every ``%(name)s`` of the English text, no more and no fewer (msgfmt --check's rule)."""
    _header, entries = catalog
    for entry in entries:
        sources = [entry.msgid] if entry.msgid_plural is None else [entry.msgid_plural]
        for translated in entry.msgstr:
            assert sorted(_PLACEHOLDER.findall(translated)) == sorted(
                _PLACEHOLDER.findall(sources[0])
            ), (entry.msgid, translated)


def test_the_header_is_filled_in(catalog: tuple[Entry, list[Entry]]) -> None:
    header, _entries = catalog
    fields = header_fields(header)
    assert fields["Language"] == "sv"
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == "nplurals=2; plural=(n != 1);"
    assert fields["Project-Id-Version"].startswith("django-pagero-oauth ")
    assert fields["Language-Team"] == "Swedish"
    text = PO_FILE.read_text(encoding="utf-8")
    for placeholder in ("PACKAGE VERSION", "FULL NAME", "EMAIL@ADDRESS", "LL@li.org", "YEAR-MO"):
        assert placeholder not in text


# --- (d) the .po holds every string the code marks ----------------------------------------


def test_makemessages_finds_nothing_new(
    catalog: tuple[Entry, list[Entry]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``makemessages`` over a copy of the package changes no entry: no string is missing
    from the catalog, none is left over. Without GNU gettext it is skipped, except under CI
    (``CI`` set), where a skip would hide a missing translation."""
    if not all(shutil.which(tool) for tool in ("xgettext", "msgmerge", "msguniq")):
        if os.environ.get("CI"):
            pytest.fail("GNU gettext is not installed: CI must run this test", pytrace=False)
        pytest.skip("GNU gettext is not installed")
    package = Path(django_pagero_oauth.__file__).resolve().parent
    copy = tmp_path / package.name
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["sv"], no_location=True, verbosity=0)
    _header, fresh = parse_po((copy / PO_FILE.relative_to(package)).read_text(encoding="utf-8"))
    _header, shipped = catalog
    known = {entry.key for entry in shipped}
    new = [entry.msgid for entry in fresh if entry.key not in known]
    gone = [entry.msgid for entry in fresh if entry.obsolete]
    assert not new, f"strings missing from the catalog (run makemessages -l sv): {new}"
    assert not gone, f"strings no longer in the code (run makemessages -l sv): {gone}"
    assert [(e.key, e.msgstr) for e in fresh] == [(e.key, e.msgstr) for e in shipped]
