"""Signals sent by django-pagero-oauth. The token signals are sent with ``sender=PageroToken``:

- ``token_obtained(token, user, request)``: a code exchange stored a (new or replaced) token.
- ``token_refreshed(token, user)``: a refresh succeeded and was committed.
- ``token_refresh_failed(token, user, reason, error)``: a refresh failed; ``reason`` is one of
  ``"reauthorization_required"`` (the refresh token is dead), ``"unavailable"`` (transient,
  nothing changed) or ``"configuration"`` (Pagero rejected the client credentials).
- ``token_revoked(token, user, remote)``: a token was deleted; ``remote`` is True when Pagero
  confirmed the revocation, False when only the local copy was removed.

Sent with ``sender=PageroIdentity`` ("Sign in with Pagero", OpenID Connect):

- ``identity_linked(identity, user, request, created_user)``: a verified Pagero identity was
  linked to ``user`` (``created_user`` is True when sign-in just created the user).
- ``user_signed_in(identity, user, request)``: a visitor was logged in as ``user`` through a
  verified ``id_token``.

Receivers never get a token value through the arguments other than the model instance; do not
log its token fields.
"""

from __future__ import annotations

from django.dispatch import Signal

token_obtained = Signal()
token_refreshed = Signal()
token_refresh_failed = Signal()
token_revoked = Signal()
identity_linked = Signal()
user_signed_in = Signal()
