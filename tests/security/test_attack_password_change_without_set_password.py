"""Attack: a password changed without ``set_password`` leaves a linked identity behind.

SECURITY.rst item 37: "A password change unlinks the user's identities (as it ends their
sessions), so even a link confirmed with a stolen session ends with the usual remedy".
``signin.unlink_on_password_change`` only acts when ``instance._password`` is set, which only
``AbstractBaseUser.set_password`` does. A password assigned as a hash and saved
(``user.password = make_password(new)``: data imports, SSO/LDAP sync jobs, custom admin
forms, a "reset password" tool that writes hashes) ends every session of the user exactly as
well (the session hash is derived from ``password``), but the Pagero identity Mallory linked
with the stolen session survives: she keeps signing in as the victim after the remedy.

Severity: low (needs a stolen session AND a password change made outside ``set_password``).

Fix: in ``signin.unlink_on_password_change``, also compare the stored hash with
``instance.password`` on a full save (``update_fields`` is None) when ``_password`` is None;
only Django's hash upgrade (``check_password``'s setter: ``_password`` reset to None and
``update_fields=["password"]``) must keep the identities. Keep the "first usable password"
rule. (``QuerySet.update(password=...)`` sends no signal at all: document it.)
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
