"""How a setting of ``PAGERO_OAUTH`` is declared (:class:`Setting` and its kinds) and the
rules its value must follow. The declarations themselves are in :mod:`django_pagero_oauth.conf`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload
from urllib.parse import urlsplit

T = TypeVar("T")
#: What a value must be: ``rule(value)`` is None for a good value, else the rule it breaks
#: ("a whole number, at least 1").
Rule = Callable[[Any], "str | None"]


@dataclass(eq=False)
class Setting(Generic[T]):
    """One key of ``PAGERO_OAUTH``, the single source of its name, type (``kind``), default
    and meaning.

    ``description`` is one reStructuredText paragraph; ``group`` is the section of the settings
    reference, the docstring of the class declaring it. ``read`` turns the value set (or the
    default, for a key not set or set to None) into what ``app_settings.NAME`` gives the app.
    ``rule`` judges a value set, and ``check`` is the id of the system check that reports one
    breaking it (``E018`` unless the key has an id of its own), with ``hint``; without a
    ``rule``, the check ``check`` names validates the key by itself.
    """

    kind: str
    default: Any
    description: str
    read: Callable[[Any], T]
    rule: Rule | None
    check: str = "E018"
    hint: str = ""
    name: str = field(init=False)
    group: str = field(init=False)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.group = name, str(owner.__doc__)

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.user_settings.get(self.name)
        return self.read(self.default if value is None else value)


def whole_number(minimum: int, maximum: int) -> Rule:
    """A whole number (not a bool, not a string) from ``minimum`` to ``maximum`` (beyond it a
    date or a cache timeout would overflow)."""

    def rule(value: Any) -> str | None:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if whole and minimum <= value <= maximum:
            return None
        return f"a whole number, at least {minimum} and at most {maximum}"

    return rule


def readable(read: Callable[[Any], float], accept: Callable[[float], bool], what: str) -> Rule:
    """A value (not a bool: ``True`` is no number of seconds) that ``read`` takes, read as a
    number ``accept`` takes."""

    def rule(value: Any) -> str | None:
        try:
            if not isinstance(value, bool) and accept(read(value)):
                return None
        except (TypeError, ValueError, OverflowError):  # int(float("inf")) overflows
            pass
        return what

    return rule


def number(value: Any) -> float:
    """``value`` itself if it is a number, not a string that reads as one."""
    if isinstance(value, (int, float)):
        return value
    raise TypeError(value)


def instance_of(kinds: type | tuple[type, ...], what: str) -> Rule:
    """A value of one of ``kinds``."""
    return lambda value: None if isinstance(value, kinds) else what


#: ``True`` or ``False`` (``"false"`` would read as true).
boolean = instance_of(bool, "True or False")
text = instance_of(str, "a string")
optional_text = instance_of((str, type(None)), "a string (or None)")


def has_blank_or_control(value: str) -> bool:
    """Whether ``value`` holds whitespace or a control character (a value read from a file often
    ends in a newline, which ``urlsplit`` strips: a check reading it so would pass it)."""
    return any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value)


def optional_url(value: Any) -> str | None:
    """A string (or None) without whitespace or control characters."""
    if optional_text(value) is not None or (value and has_blank_or_control(value)):
        return "a URL without whitespace or control characters (or empty)"
    return None


def absolute_url(optional: bool) -> Rule:
    """An absolute http(s) URL without whitespace or control characters (or, if ``optional``,
    empty)."""

    def rule(value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        try:
            split = urlsplit(value) if isinstance(value, str) else None
            absolute = bool(split and split.scheme in ("http", "https") and split.hostname)
        except ValueError:  # "http://[::1": not a URL at all
            absolute = False
        if absolute and not has_blank_or_control(value):
            return None
        what = "an absolute http(s) URL without whitespace or control characters"
        return f"{what} (or empty)" if optional else what

    return rule


def one_of(choices: tuple[str, ...]) -> Rule:
    """One of ``choices``."""
    what = f"one of {', '.join(map(repr, choices))}"
    return lambda value: None if value in choices else what


def text_or_texts(value: Any) -> str | None:
    """A string or a list (or tuple) of strings."""
    if isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
    ):
        return None
    return "a string or a list of strings"


def regular_expressions(value: Any) -> str | None:
    """A regular expression, or a list of them, that all compile."""
    if text_or_texts(value) is not None:
        return "a regular expression or a list of them"
    for pattern in [value] if isinstance(value, str) else value:
        try:
            re.compile(pattern)
        except re.error:
            return f"a list of valid regular expressions ({pattern!r} is not one)"
    return None


def dotted_path(value: Any) -> str | None:
    """Empty, or the dotted path of something that can be imported."""
    if value is None or value == "":
        return None
    from django.utils.module_loading import import_string

    try:
        if isinstance(value, str):
            import_string(value)
            return None
    except ImportError:
        pass
    return "empty or the dotted path of a callable that can be imported"


def texts(value: Any) -> list[str]:
    """One string (or bytes) or a list of them, read as a list of strings."""
    values = [value] if isinstance(value, (str, bytes)) else value or []
    return [item.decode() if isinstance(item, bytes) else str(item) for item in values]


class Flag(Setting[bool]):
    """``True`` or ``False``."""

    def __init__(self, default: bool, description: str) -> None:
        super().__init__("bool", default, description, read=bool, rule=boolean)


class Text(Setting[str]):
    """A string (by default: any string)."""

    def __init__(
        self,
        default: str,
        description: str,
        *,
        rule: Rule = text,
        read: Callable[[Any], str] = str,
        check: str = "E018",
    ) -> None:
        super().__init__("str", default, description, read=read, rule=rule, check=check)


class Url(Setting[str]):
    """A URL of Pagero's (``E012``; ``E002`` without https)."""

    def __init__(self, default: str, description: str, optional: bool = False) -> None:
        super().__init__(
            "str",
            default,
            description,
            read=str,
            rule=absolute_url(optional),
            check="E012",
            hint="Use the full URL, starting with https://, without whitespace or control "
            "characters (a value read from a file or the environment may end in a newline).",
        )


class Whole(Setting[int]):
    """A whole number of ``unit`` from ``minimum`` to ``maximum`` (unless ``rule`` says
    otherwise); a smaller one reads as ``minimum``."""

    def __init__(
        self,
        default: int,
        description: str,
        *,
        minimum: int,
        maximum: int,
        unit: str = "seconds",
        rule: Rule | None = None,
        check: str = "E018",
        hint: str = "",
    ) -> None:
        super().__init__(
            f"int, {unit}" if unit else "int",
            default,
            description,
            read=lambda value: max(minimum, int(value)),
            rule=rule or whole_number(minimum, maximum),
            check=check,
            hint=hint,
        )
