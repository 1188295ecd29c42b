"""A password change unlinks the user's Pagero identities (SECURITY.rst: "every password
change"), also when the user is saved through a PROXY of the user model.

``apps.py`` connects ``unlink_on_password_change`` with ``sender=settings.AUTH_USER_MODEL``;
Django sends ``pre_save`` with ``sender`` = the class of the saved instance, so a proxy's save
(``class Staff(User): Meta.proxy = True``, common for a second admin of the users, or a
project's ``Customer``/``Employee`` proxies) never reaches the receiver. An identity linked
through a stolen session survives the password change made in that admin: the remedy for a
compromised account leaves the attacker's "Sign in with Pagero" in place.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from django_pagero_oauth.models import PageroIdentity
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, LINK, at_pagero, single, start

SIGN_IN = "/pagero/sign-in/"


class StaffUser(User):
    """A proxy of the user model, as a project's second user admin has."""

    class Meta:
        proxy = True
        app_label = "auth"


def test_a_password_changed_through_a_proxy_model_unlinks(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    stolen = Client()
    stolen.force_login(user)
    stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    assert stolen.post(LINK, {"confirm": "1"}).status_code == 302
    assert PageroIdentity.objects.filter(user=user).exists()

    # The remedy, done in the staff admin (a proxy of User): Django's own set_password + save.
    staff = StaffUser.objects.get(pk=user.pk)
    staff.set_password("a-new-password")
    staff.save()

    assert not PageroIdentity.objects.filter(user=user).exists(), (
        "the identity linked through the stolen session outlives a password change saved "
        "through a proxy of the user model"
    )


def test_a_user_deleted_through_a_proxy_model_has_their_refresh_token_revoked(
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The same for ``pre_delete``: deleting in the staff admin revokes at Pagero too."""
    token = pagero_token_factory(user)
    with django_capture_on_commit_callbacks(execute=True):  # as a commit would
        StaffUser.objects.get(pk=user.pk).delete()
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
