"""The signals of django-pagero-oauth: ``token_obtained``, ``token_refreshed``,
``token_refresh_failed`` and ``token_revoked`` (``sender=PageroToken``), ``identity_linked``
and ``user_signed_in`` (``sender=PageroIdentity``). Their arguments and when each is sent:
:doc:`/signals-and-exceptions`. No argument but the model instance holds a token; do not log
its token fields.
"""

from __future__ import annotations

from django.dispatch import Signal

token_obtained = Signal()
token_refreshed = Signal()
token_refresh_failed = Signal()
token_revoked = Signal()
identity_linked = Signal()
user_signed_in = Signal()
