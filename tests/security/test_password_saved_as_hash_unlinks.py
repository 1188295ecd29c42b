"""What this proves: a password changed by writing its hash and saving the user (not through
``set_password``) unlinks the user's Pagero identities too, as SECURITY.rst item 37 promises
for every password change; Django's own hash upgrade in ``check_password`` does not.

``signin.unlink_on_password_change`` compares the stored hash on every save that writes the
password, also a save of ``update_fields=["password"]`` alone (a hash written directly, or
``set_unusable_password()``, saved that way). Only ``check_password``'s upgrade is left alone,
recognised by the hashes themselves: an outdated hash replaced by an up-to-date one of the
preferred hasher. So an identity linked through a stolen session ends with the usual remedy,
whichever tool changed the password. (Found by the second security review, finding 7, and
issue 16.)
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import make_password
from django.test import Client

from django_pagero_oauth.models import PageroIdentity
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, LINK, at_pagero, single, start

SIGN_IN = "/pagero/sign-in/"


def test_a_password_saved_as_a_hash_unlinks_too(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    stolen = Client()
    stolen.force_login(user)
    stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    assert stolen.post(LINK, {"confirm": "1"}).status_code == 302
    assert PageroIdentity.objects.filter(user=user).exists()

    # The remedy: the password is changed (here by a tool that writes the hash).
    user.password = make_password("a-new-password")
    user.save()

    assert not PageroIdentity.objects.filter(user=user).exists(), (
        "the identity linked through the stolen session outlives the password change"
    )


def _linked(user: Any, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    stolen = Client()
    stolen.force_login(user)
    stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    assert stolen.post(LINK, {"confirm": "1"}).status_code == 302
    assert PageroIdentity.objects.filter(user=user).exists()


def test_a_hash_saved_with_update_fields_password_unlinks_too(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _linked(user, settings)

    user.password = make_password("a-new-password")  # no set_password(): _password stays None
    user.save(update_fields=["password"])

    assert not PageroIdentity.objects.filter(user=user).exists(), (
        "a hash saved as check_password's upgrade is saved was taken for one"
    )


def test_an_unusable_password_saved_with_update_fields_password_unlinks(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _linked(user, settings)

    user.set_unusable_password()
    user.save(update_fields=["password"])

    assert not PageroIdentity.objects.filter(user=user).exists()


def test_a_hash_upgrade_by_check_password_keeps_the_identity(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    user.set_password("the-password")
    user.save()
    owner = Client()
    owner.force_login(user)
    owner.get(CALLBACK, single(at_pagero(start(owner, SIGN_IN), "acme-corp")))
    assert owner.post(LINK, {"confirm": "1"}).status_code == 302

    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        *settings.PASSWORD_HASHERS,
    ]  # the stored MD5 hash is now outdated: check_password re-hashes and saves it
    before = user.password
    user.refresh_from_db()
    assert user.check_password("the-password")
    assert user.password != before  # upgraded

    assert PageroIdentity.objects.filter(user=user).exists()
