"""Test helpers for django-pagero-oauth: a strict mock Pagero server (:mod:`.mock`)."""
