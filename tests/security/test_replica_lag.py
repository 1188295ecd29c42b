"""What this proves: with the common primary/replica router (reads to ``"replica"``, writes to
``"default"``), a lagging replica decides nothing. Every read whose answer decides something
(the identity a sign-in finds and its user, the token and its user's ``is_active`` that
``get_valid_token`` and the guard use, what the disconnect page revokes, what the admin's
actions act on) is made on the database the write goes to (``router.db_for_write``).

The replica here is a real second database holding a STALE copy: the rows as they were before
the primary changed (an identity unlinked, a user deactivated, a token disconnected, a token
created). On SQLite it is a second file, on PostgreSQL a second test database, created for
this module and dropped after it. Sessions are routed to the primary, as a site with replicas
must (a session read from a lagging replica loses a login's pending flow).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connections, models
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, SIGN_IN, at_pagero, logged_in_as, single, start

REPLICA = "replica"
PROTECTED = "/protected/"
DISCONNECT = "/pagero/disconnect/"
BACKENDS = {
    "ModelBackend": "django.contrib.auth.backends.ModelBackend",
    "PageroModelBackend": "django_pagero_oauth.backends.PageroModelBackend",
}

pytestmark = pytest.mark.django_db(databases=["default", REPLICA])


class PrimaryReplicaRouter:
    """Django's documented primary/replica router: every read from the replica (sessions
    excepted), every write to the primary."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        return "default" if model._meta.app_label == "sessions" else REPLICA

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True


@pytest.fixture(scope="module")
def replica_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A second database (the replica), migrated, for this module only."""
    default = connections["default"].settings_dict
    if default["ENGINE"] == "django.db.backends.sqlite3":
        name = str(Path(tempfile.gettempdir()) / f"pagero-replica-{os.getpid()}.sqlite3")
        config = {**default, "NAME": name, "TEST": {"NAME": name}}
    else:
        name = f"{default['NAME']}_replica"
        config = {**default, "NAME": name, "TEST": {"NAME": name}}
    config["ATOMIC_REQUESTS"] = False
    django_settings.DATABASES[REPLICA] = config
    connections.settings[REPLICA] = connections.configure_settings(
        {"default": default, REPLICA: config}
    )[REPLICA]
    with django_db_blocker.unblock():
        creation = connections[REPLICA].creation
        old_name = creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            yield REPLICA
        finally:
            creation.destroy_test_db(old_name, verbosity=0)
            connections[REPLICA].close()
            del connections[REPLICA]
            connections.settings.pop(REPLICA, None)
            django_settings.DATABASES.pop(REPLICA, None)  # often the same dict


@pytest.fixture
def routed(replica_database: str, settings: Any) -> None:
    settings.DATABASE_ROUTERS = [PrimaryReplicaRouter()]


def copy_to_replica(*rows: models.Model) -> None:
    """The replica's stale copy: each row as the primary holds it now."""
    for row in rows:
        fresh = type(row)._base_manager.using("default").get(pk=row.pk)
        fresh.save(using=REPLICA, force_insert=True)


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend(request: Any, settings: Any) -> str:
    settings.AUTHENTICATION_BACKENDS = [BACKENDS[request.param]]
    return str(request.param)


# --- sign-in: an unlinked identity -------------------------------------------------------


def test_an_identity_unlinked_on_the_primary_neither_signs_in_nor_is_linked_again(
    client: Client, user: Any, pagero_mock: MockPageroServer, sign_in_enabled: None, routed: None
) -> None:
    identity = PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    copy_to_replica(user, identity)
    identity.delete()  # unlinked (password change, "Unlink", the admin); the replica lags

    response = client.get(CALLBACK, single(at_pagero(start(client, SIGN_IN), "acme-ab")))

    assert response.status_code == 403  # unknown_identity: nobody is linked to it
    assert logged_in_as(client) is None
    assert not PageroIdentity.objects.using("default").exists(), "the link was re-created"
    assert not PageroToken.objects.using("default").exists()


# --- get_valid_token and the guard: a deactivated user, a disconnected token -------------


def test_a_user_deactivated_on_the_primary_gets_no_token(
    client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    backend: str,
    routed: None,
) -> None:
    token = pagero_token_factory(user)
    copy_to_replica(user, token)
    get_user_model().objects.using("default").filter(pk=user.pk).update(is_active=False)
    client.force_login(user)

    response = client.get(PROTECTED)

    assert response.status_code == 302, "the deactivated user's token was used"
    assert pagero_mock.mock.counts["api"] == 0


def test_a_token_disconnected_on_the_primary_is_not_used(
    client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    backend: str,
    routed: None,
) -> None:
    token = pagero_token_factory(user)
    copy_to_replica(user, token)
    PageroToken.objects.using("default").filter(pk=token.pk).delete()  # disconnected
    client.force_login(user)

    response = client.get(PROTECTED)

    assert response.status_code == 302
    assert response["Location"].startswith("/pagero/login/"), "the disconnected token was used"


# --- revocation: the disconnect page decides on the primary ------------------------------


def test_a_token_not_yet_on_the_replica_is_revoked_on_disconnect(
    client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    routed: None,
) -> None:
    copy_to_replica(user)  # the replica has the user, not yet the token just connected
    token = pagero_token_factory(user)
    client.force_login(user)

    response = client.post(DISCONNECT)

    assert response.status_code == 302
    assert not PageroToken.objects.using("default").exists(), "the connection was left in place"
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)


# --- the admin: actions select their rows on the primary ---------------------------------


def test_the_admin_revokes_a_token_not_yet_on_the_replica(
    admin_user: Any,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    routed: None,
) -> None:
    copy_to_replica(admin_user, user)  # not the token: connected moments ago
    token = pagero_token_factory(user)
    client = Client()
    client.force_login(admin_user)
    changelist = "/admin/django_pagero_oauth/pagerotoken/"
    data = {"action": "revoke", "index": 0, "_selected_action": [token.pk]}

    response = client.post(changelist, data)

    assert response.status_code == 302
    assert not PageroToken.objects.using("default").exists(), "the action found nothing"
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
