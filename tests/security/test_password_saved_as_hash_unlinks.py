"""What this proves: a password changed by writing its hash and saving the user (not through
``set_password``) unlinks the user's Pagero identities too, as SECURITY.rst item 37 promises
for every password change; Django's own hash upgrade in ``check_password`` does not.

``signin.unlink_on_password_change`` compares the stored hash on every save that writes the
password; only a save of ``update_fields=["password"]`` with ``_password`` reset (what
``check_password``'s setter does when it re-hashes the same password) is left alone. So an
identity linked through a stolen session ends with the usual remedy, whichever tool changed
the password. (Found by the second security review, finding 7.)
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
