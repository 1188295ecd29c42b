"""Test helpers for django-pagero-oauth: a strict mock Pagero server (:mod:`.mock`).

:func:`mock_settings` gives the ``PAGERO_OAUTH`` keys that point a site at a running mock
(``python -m django_pagero_oauth.testing.mock`` prints the lines to paste).
"""

from .mock.state import mock_settings

__all__ = ["mock_settings"]
