"""Sphinx configuration of the django-pagero-oauth documentation.

Build it with ``./scripts/docs`` (HTML, then the doctests). CI builds it with ``-W
--keep-going -n``: every warning is an error, and every cross-reference to the app's own
objects must resolve. There is no network in CI, so there is no intersphinx: references to
Django, ``requests`` and other libraries are listed in ``nitpick_ignore_regex`` instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO), str(DOCS / "_ext")]

# autodoc imports the modules, the doctests use the ORM's models: set Django up with the test
# suite's settings (SQLite unless DATABASE_URL says otherwise).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()

from django_pagero_oauth import __version__  # noqa: E402

project = "django-pagero-oauth"
author = "The django-pagero-oauth authors"
copyright = "the django-pagero-oauth authors, BSD 3-Clause License"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "pagero_includes",
    "pagero_refs",
    "pagero_settings",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
language = "en"
nitpicky = True

# --- autodoc ---------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autoclass_content = "class"
# An override without a docstring of its own (PageroSession.request) is not documented with
# the docstring of the library it overrides.
autodoc_inherit_docstrings = False

# Objects outside this package cannot be resolved without intersphinx (no network in CI).
# Only names that are not the app's own are ignored here: a broken reference to
# django_pagero_oauth.* still fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!django_pagero_oauth\b).*\.[\w.]+"),  # dotted names from other packages
    (
        r"py:.*",
        r"(Any|Callable|Awaitable|Iterator|Iterable|Generator|AsyncIterator|Mapping|"
        r"MutableMapping|Sequence|Collection|ClassVar|TypeVar|ParamSpec|Self|Literal|"
        r"Optional|Union|NamedTuple|TypedDict|Protocol|Generic|Final|"
        r"HttpRequest|HttpResponse|HttpResponseBase|HttpResponseRedirect|JsonResponse|"
        r"AbstractBaseUser|AnonymousUser|User|Model|QuerySet|Manager|Field|Q|F|"
        r"PermissionDenied|SuspiciousOperation|ImproperlyConfigured|ValidationError|"
        r"Session|PreparedRequest|Response|Request|HTTPAdapter|Retry|Fernet|MultiFernet|"
        r"BaseCommand|CommandParser|CommandError|CheckMessage|Signal|Task|RequestHistory|LazyObject|"
        r"View|TemplateView|APIView|BasePermission|APIException|"
        r"timedelta|datetime|date|Path|Enum|Exception|ValueError|TypeError|"
        r"T|P|R|_T|_P|_R|P\.args|P\.kwargs|ViewFunc|AsyncViewFunc|.*\bTextChoices)",
    ),
    # The app's own names that have no entry of their own: type variables and aliases of the
    # annotations, private helpers a docstring mentions, and the mock's instance attributes,
    # which its class docstring describes.
    (r"py:.*", r"(django_pagero_oauth\.decorators\.)?View|ResponseHandler"),
    (r"py:.*", r"django_pagero_oauth\.kinds\.T"),
    (r"py:.*", r"(django_pagero_oauth\.[\w.]+\.)?_\w+"),
    (r"py:attr", r"lock|counts|issued_refresh_tokens|expires_in"),
    # MockPagero's endpoint mixin and state (internal modules of the mock, see architecture).
    (
        r"py:class",
        r"django_pagero_oauth\.testing\.mock\.(endpoints\.OAuthEndpoints|state\.MockPageroState)",
    ),
]

# --- doctest ---------------------------------------------------------------------------------
# The examples that can run without a network run under `sphinx-build -b doctest`.
doctest_global_setup = """
from django.test import override_settings
"""
doctest_test_doctest_blocks = ""  # only explicit ``.. doctest::`` blocks are run

# --- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"django-pagero-oauth {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
