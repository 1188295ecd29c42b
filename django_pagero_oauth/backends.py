"""``PageroModelBackend``: Django's ``ModelBackend`` that loads the user's token with the user.

Optional. With it in ``AUTHENTICATION_BACKENDS`` (instead of ``ModelBackend``), the query that
``AuthenticationMiddleware`` makes for ``request.user`` also brings the user's
:class:`~django_pagero_oauth.models.PageroToken` (a ``LEFT JOIN``; the refresh and ID tokens
are not loaded), and :func:`~django_pagero_oauth.get_valid_token` uses it: a protected request
then makes no query of its own. The token is as fresh as a separate query in the same request
would be; a refresh still goes through the row lock.

Switching a running site from ``ModelBackend`` logs its users out once: Django keeps the
backend's path in each session.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import router

from .tokens import PRELOADED


class PageroModelBackend(ModelBackend):
    """``ModelBackend`` whose ``get_user`` selects the user's Pagero token in the same query."""

    def get_user(self, user_id: Any) -> Any:
        user_model = get_user_model()
        try:
            # Read where writes go: a lagging read replica may still hold a user
            # deactivated, or a token disconnected, on the primary.
            user = (
                user_model._default_manager.db_manager(router.db_for_write(user_model))
                .select_related("pagero_token")
                .defer("pagero_token__refresh_token", "pagero_token__id_token")
                .get(pk=user_id)
            )
        except user_model.DoesNotExist:
            return None
        setattr(user, PRELOADED, True)  # get_valid_token may use the token loaded here
        return user if self.user_can_authenticate(user) else None
