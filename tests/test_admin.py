"""The admin of :mod:`django_pagero_oauth.admin`: never a token on a page, constant queries,
read-only, and the "Refresh now" / "Revoke" actions against the real mock server."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_pagero_oauth import crypto
from django_pagero_oauth.admin import PageroTokenAdmin, user_search_fields
from django_pagero_oauth.admin_actions import MAX_ACTION_ITEMS
from django_pagero_oauth.crypto import fingerprint
from django_pagero_oauth.models import PageroToken, TokenHealth
from django_pagero_oauth.signals import token_revoked
from django_pagero_oauth.testing.mock import Fault

User = get_user_model()
CHANGELIST = reverse("admin:django_pagero_oauth_pagerotoken_changelist")


def change_url(token: PageroToken) -> str:
    return reverse("admin:django_pagero_oauth_pagerotoken_change", args=[token.pk])


def secret_values(tokens: Iterable[PageroToken]) -> list[str]:
    """The plaintext token values as stored (read fresh, so deferred fields are loaded)."""
    values = []
    for token in PageroToken.objects.filter(pk__in=[t.pk for t in tokens]):
        values += [v for v in (token.access_token, token.refresh_token, token.id_token) if v]
    return values


def assert_no_token_leak(html: str, values: Iterable[str]) -> None:
    """No substring of 8 or more characters of any token value appears in ``html``."""
    for value in values:
        assert len(value) >= 8
        for start in range(len(value) - 7):
            window = value[start : start + 8]
            assert window not in html, f"8 characters of a token at offset {start} leaked"


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client: Any, action: str, tokens: Iterable[PageroToken], **extra: Any) -> Any:
    data = {"action": action, "index": 0, "_selected_action": [t.pk for t in tokens], **extra}
    return client.post(CHANGELIST, data)


def bulk_tokens(count: int, prefix: str) -> dict[int, tuple[str, str]]:
    """``count`` users with tokens in every state, fast; returns ``{pk: (access, refresh)}``."""
    now = timezone.now()
    users = User.objects.bulk_create(
        [User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com") for i in range(count)]
    )
    rows, values = [], []
    for i, user in enumerate(users):
        access, refresh = secrets.token_urlsafe(40), f"_1XBPWQQ_{secrets.token_hex(16)}"
        values.append((access, refresh))
        rows.append(
            PageroToken(
                user=user,
                access_token=access,
                refresh_token=refresh,
                fingerprint=fingerprint(refresh),
                publicid=f"company-{prefix}{i}",
                access_token_issued_at=now - timedelta(seconds=600),
                access_token_expires_at=now + timedelta(seconds=600 - (i % 3) * 600),
                refresh_token_expires_at=now + timedelta(days=(i % 50) * 25 - 10),
                status=(
                    PageroToken.Status.REAUTHORIZATION_REQUIRED
                    if i % 7 == 3
                    else PageroToken.Status.ACTIVE
                ),
            )
        )
    created = PageroToken.objects.bulk_create(rows)
    return {token.pk: value for token, value in zip(created, values, strict=True)}


@pytest.fixture
def token(user: Any, pagero_token_factory: Callable[..., PageroToken]) -> PageroToken:
    return pagero_token_factory(user, publicid="acme-ab")


@pytest.fixture
def staff_client(client: Any, db: None) -> Callable[..., Any]:
    """``staff_client(*codenames)``: a logged-in staff user with only those permissions."""

    def make(*codenames: str) -> Any:
        staff = User.objects.create_user(f"staff-{'-'.join(codenames)}", password="pw")
        staff.is_staff = True
        staff.save()
        staff.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="django_pagero_oauth", codename__in=codenames
            )
        )
        client.force_login(staff)
        return client

    return make


# --- no token on any page -------------------------------------------------------------------


def test_changelist_shows_status_and_fingerprint_but_no_token(
    admin_client: Any, user: Any, other_user: Any, pagero_token_factory: Any
) -> None:
    valid = pagero_token_factory(
        user, publicid="acme-ab", last_refreshed=timezone.now() - timedelta(hours=3, minutes=1)
    )
    expired = pagero_token_factory(other_user, expired=True)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert valid.fingerprint in html and expired.fingerprint in html
    assert str(TokenHealth.VALID.label) in html
    assert str(TokenHealth.ACCESS_TOKEN_EXPIRED.label) in html
    assert "3\xa0hours ago" in html  # last refreshed, relative
    assert 'class="toplinks"' not in html  # no date hierarchy
    assert_no_token_leak(html, secret_values([valid, expired]))
    assert "_1XBPWQQ_" not in html


def test_change_view_shows_decoded_jwt_labelled_not_verified_and_no_token(
    admin_client: Any, token: PageroToken
) -> None:
    response = admin_client.get(change_url(token))
    assert response.status_code == 200
    html = response.content.decode()
    assert "decoded, not verified" in html
    assert "mock-key-1" in html  # the JWT header's kid
    assert "&quot;publicid&quot;: &quot;acme-ab&quot;" in html
    assert token.fingerprint in html
    assert_no_token_leak(html, secret_values([token]))
    for name in ("access_token", "refresh_token", "id_token"):
        assert f'name="{name}"' not in html


def test_change_view_of_an_opaque_token_shows_no_decoded_section(
    admin_client: Any, token: PageroToken
) -> None:
    token.access_token = "opaque-access-token-value-" + secrets.token_hex(8)
    token.save()
    html = admin_client.get(change_url(token)).content.decode()
    assert "decoded, not verified" not in html
    assert_no_token_leak(html, secret_values([token]))


def test_change_view_reports_undecryptable_token(
    admin_client: Any, token: PageroToken, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],  # the key that wrote it is lost
    }
    response = admin_client.get(change_url(token))
    assert response.status_code == 200
    assert "cannot be decrypted with the configured keys" in response.content.decode()


# --- read-only ------------------------------------------------------------------------------


def test_tokens_cannot_be_added_or_edited(admin_client: Any, token: PageroToken) -> None:
    add = reverse("admin:django_pagero_oauth_pagerotoken_add")
    assert admin_client.get(add).status_code == 403
    html = admin_client.get(change_url(token)).content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    before = PageroToken.objects.values().get(pk=token.pk)
    response = admin_client.post(change_url(token), {"scope": "everything", "publicid": "x"})
    assert response.status_code == 403
    assert PageroToken.objects.values().get(pk=token.pk) == before


def test_bulk_delete_is_replaced_by_revoke(admin_client: Any, token: PageroToken) -> None:
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in html
    assert 'value="revoke"' in html and 'value="refresh_now"' in html


# --- queries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["", "?health=valid", "?refresh_token_expires=30d", "?q=company", "?o=2", "?o=3.-4"],
)
def test_changelist_queries_do_not_grow_and_nothing_is_decrypted(
    admin_client: Any,
    django_assert_num_queries: Any,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
) -> None:
    bulk_tokens(20, "few")
    admin_client.get(CHANGELIST)  # warm caches (content types, session)

    def no_decryption(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the changelist decrypted a token")

    monkeypatch.setattr(crypto, "decrypt", no_decryption)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST + query).status_code == 200
    bulk_tokens(180, "many")
    with django_assert_num_queries(len(few.captured_queries)) as many:
        response = admin_client.get(CHANGELIST + query)
    assert response.status_code == 200
    for captured in many.captured_queries:
        # Never loaded: the undecryptable-tokens banner only compares their key id prefix.
        selected = captured["sql"].split(" FROM ")[0]
        for column in ("access_token", "refresh_token", "id_token"):
            assert f'."{column}"' not in selected, captured["sql"]


def test_changelist_statuses_come_from_the_database(admin_client: Any) -> None:
    bulk_tokens(50, "mix")
    expected = dict(PageroToken.objects.with_health().values_list("pk", "health"))
    assert set(expected.values()) == set(TokenHealth.values)  # every state is represented
    for health in TokenHealth.values:
        html = admin_client.get(CHANGELIST + f"?health={health}").content.decode()
        shown = {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}
        assert shown == {pk for pk, value in expected.items() if value == health}


# --- health (models.PageroTokenQuerySet) ----------------------------------------------------


def test_health_annotation_and_filter_agree_and_follow_precedence(db: None) -> None:
    bulk_tokens(100, "h")
    now = timezone.now()
    annotated = dict(PageroToken.objects.with_health(now).values_list("pk", "health"))
    for health in TokenHealth.values:
        filtered = set(PageroToken.objects.filter_health(health, now).values_list("pk", flat=True))
        assert filtered == {pk for pk, value in annotated.items() if value == health}
    for token in PageroToken.objects.with_health(now):
        if token.status == PageroToken.Status.REAUTHORIZATION_REQUIRED:
            assert token.health == TokenHealth.REAUTHORIZATION_REQUIRED
        elif token.refresh_token_expires_at <= now:
            assert token.health == TokenHealth.REFRESH_TOKEN_EXPIRED
        elif token.refresh_token_expires_at <= now + timedelta(days=30):
            assert token.health == TokenHealth.REFRESH_TOKEN_EXPIRING
        elif token.access_token_expires_at <= now:
            assert token.health == TokenHealth.ACCESS_TOKEN_EXPIRED
        else:
            assert token.health == TokenHealth.VALID


def test_refresh_token_expiry_filter_and_warning(
    admin_client: Any, user: Any, other_user: Any, pagero_token_factory: Any
) -> None:
    soon = pagero_token_factory(
        user, refresh_token_expires_at=timezone.now() + timedelta(days=12, hours=1)
    )
    later = pagero_token_factory(other_user)
    html = admin_client.get(CHANGELIST + "?refresh_token_expires=30d").content.decode()
    html = html.replace("\xa0", " ")  # timesince separates number and unit with a nbsp
    assert soon.fingerprint in html and later.fingerprint not in html
    assert "pagero-expiry-warning" in html and "in 1 week" in html
    html = admin_client.get(CHANGELIST).content.decode()
    assert html.count("pagero-expiry-warning") == 1


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["alice", "alice@example", "acme"])
def test_search_by_username_email_and_publicid(
    admin_client: Any, token: PageroToken, other_user: Any, pagero_token_factory: Any, term: str
) -> None:
    other = pagero_token_factory(other_user, publicid="globex")
    html = admin_client.get(CHANGELIST, {"q": term}).content.decode()
    assert token.fingerprint in html and other.fingerprint not in html


def test_email_is_searched_only_when_the_user_model_has_one() -> None:
    assert user_search_fields(User) == ["user__username", "user__email"]

    class Meta:
        @staticmethod
        def get_field(name: str) -> Any:
            if name != "handle":
                raise FieldDoesNotExist(name)
            return object()

    class NoEmailUser:
        USERNAME_FIELD = "handle"
        _meta = Meta

        @classmethod
        def get_email_field_name(cls) -> str:
            return "email"

    assert user_search_fields(NoEmailUser) == ["user__handle"]  # type: ignore[arg-type]


# --- actions --------------------------------------------------------------------------------


def test_refresh_now_refreshes_through_pagero(
    admin_client: Any, token: PageroToken, pagero_mock: Any
) -> None:
    response = run_action(admin_client, "refresh_now", [token])
    assert response.status_code == 302
    fresh = PageroToken.objects.get(pk=token.pk)
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert fresh.fingerprint != token.fingerprint and fresh.last_refreshed is not None
    assert messages_of(response) == [f"alice: refreshed, new fingerprint {fresh.fingerprint}."]


def test_refresh_now_reports_each_item(
    admin_client: Any,
    user: Any,
    other_user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
) -> None:
    first = pagero_token_factory(user)
    second = pagero_token_factory(other_user)
    pagero_mock.mock.add_fault(Fault("token", grant_type="refresh_token", status=503))
    response = run_action(admin_client, "refresh_now", [first, second])
    reports = messages_of(response)
    assert len(reports) == 2
    assert reports[0].startswith("alice (") and "Pagero is unavailable (HTTP 503)" in reports[0]
    assert reports[1].startswith("mallory: refreshed")
    assert PageroToken.objects.get(pk=first.pk).refresh_token == first.refresh_token  # kept
    assert pagero_mock.mock.counts["refresh_token"] == 2


def test_refresh_now_of_a_dead_token_asks_for_reauthorization(
    admin_client: Any, token: PageroToken, pagero_mock: Any
) -> None:
    pagero_mock.mock.reset()  # Pagero forgot the refresh token: invalid_grant
    response = run_action(admin_client, "refresh_now", [token])
    assert "needs re-authorization" in messages_of(response)[0]
    assert PageroToken.objects.get(pk=token.pk).needs_reauthorization


def test_refresh_now_stops_at_rejected_client_credentials(
    admin_client: Any, user: Any, other_user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    tokens = [pagero_token_factory(user), pagero_token_factory(other_user)]
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "wrong"}
    reports = messages_of(run_action(admin_client, "refresh_now", tokens))
    assert len(reports) == 1
    assert "client credentials" in reports[0] and "1 more token was not tried" in reports[0]


def test_revoke_tells_pagero_deletes_and_sends_the_signal(
    admin_client: Any,
    token: PageroToken,
    pagero_mock: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    token_revoked.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = run_action(admin_client, "revoke", [token])
    finally:
        token_revoked.disconnect(receiver)
    assert messages_of(response) == [f"alice ({token.fingerprint}): revoked at Pagero and deleted."]
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert len(received) == 1
    assert received[0]["remote"] is True and received[0]["user"].username == "alice"
    assert received[0]["token"].pk == token.pk


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault("revoke", status=503), "could not confirm the revocation (HTTP 503)"),
        (Fault("revoke", drop=True), "could not confirm the revocation. Try again later."),
    ],
)
def test_revoke_keeps_the_token_when_pagero_cannot_confirm(
    admin_client: Any, token: PageroToken, pagero_mock: Any, fault: Fault, expected: str
) -> None:
    pagero_mock.mock.add_fault(fault)
    response = run_action(admin_client, "revoke", [token])
    assert expected in messages_of(response)[0]
    assert PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)


def test_revoke_without_revoke_url_deletes_locally_and_says_so(
    admin_client: Any,
    token: PageroToken,
    pagero_mock: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    received: list[bool] = []

    def receiver(sender: Any, remote: bool, **kwargs: Any) -> None:
        received.append(remote)

    token_revoked.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = run_action(admin_client, "revoke", [token])
    finally:
        token_revoked.disconnect(receiver)
    assert "Pagero was not told" in messages_of(response)[0]
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == 0 and received == [False]


def test_actions_refuse_huge_selections(
    admin_client: Any, pagero_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_tokens(MAX_ACTION_ITEMS + 1, "huge")
    response = admin_client.post(
        CHANGELIST,
        {"action": "refresh_now", "index": 0, "select_across": 1, "_selected_action": [0]},
    )
    assert "Select at most 100 tokens" in messages_of(response)[0]
    assert pagero_mock.mock.counts["refresh_token"] == 0


# --- permissions ----------------------------------------------------------------------------


def test_view_only_staff_see_but_cannot_act(
    staff_client: Callable[..., Any], token: PageroToken, pagero_mock: Any
) -> None:
    client = staff_client("view_pagerotoken")
    html = client.get(CHANGELIST).content.decode()
    assert token.fingerprint in html
    assert 'name="action"' not in html
    html = client.get(change_url(token)).content.decode()
    assert "decoded, not verified" in html and 'name="action"' not in html
    for action in ("refresh_now", "revoke", "delete_selected"):
        run_action(client, action, [token])
    assert pagero_mock.mock.counts["refresh_token"] == 0 and pagero_mock.mock.counts["revoke"] == 0
    assert PageroToken.objects.get(pk=token.pk).fingerprint == token.fingerprint


def test_change_permission_refreshes_but_only_delete_permission_revokes(
    staff_client: Callable[..., Any], token: PageroToken, pagero_mock: Any
) -> None:
    client = staff_client("change_pagerotoken")
    html = client.get(change_url(token)).content.decode()
    assert 'value="refresh_now"' in html and 'value="revoke"' not in html
    run_action(client, "revoke", [token])
    assert PageroToken.objects.filter(pk=token.pk).exists()
    run_action(client, "refresh_now", [token])
    assert pagero_mock.mock.counts["refresh_token"] == 1 and pagero_mock.mock.counts["revoke"] == 0


def test_change_view_buttons_run_the_actions(
    admin_client: Any, token: PageroToken, pagero_mock: Any
) -> None:
    html = admin_client.get(change_url(token)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" class="pagero-action-form">', html)
    assert form is not None and form.group(1) == CHANGELIST
    assert f'name="_selected_action" value="{token.pk}"' in html
    run_action(admin_client, "revoke", [token])
    assert pagero_mock.mock.counts["revoke"] == 1


def test_the_admin_is_registered() -> None:
    from django.contrib import admin

    assert isinstance(admin.site._registry[PageroToken], PageroTokenAdmin)


# --- undecryptable tokens and the keyed fingerprint ------------------------------------------


def test_changelist_warns_about_undecryptable_tokens_without_decrypting(
    admin_client: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Fernet.generate_key().decode()
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [old]}
    bulk_tokens(3, "lost")
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],  # ``old`` is gone
    }
    bulk_tokens(2, "fine")

    def no_decryption(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the changelist decrypted a token")

    monkeypatch.setattr(crypto, "decrypt", no_decryption)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    (warning,) = messages_of(response)
    assert warning.startswith(
        "3 Pagero tokens cannot be decrypted with the configured keys: their users must "
        "connect to Pagero again."
    )
    assert "pagero_prune_tokens --undecryptable" in warning
    html = response.content.decode()
    assert "3 Pagero tokens cannot be decrypted" in html  # shown on the page
    assert "lost0" in html  # and still listed


def test_changelist_has_no_banner_when_every_token_decrypts(
    admin_client: Any, token: PageroToken
) -> None:
    assert messages_of(admin_client.get(CHANGELIST)) == []


def test_search_by_fingerprint(admin_client: Any, token: PageroToken, other_user: Any) -> None:
    other = PageroToken.objects.create(
        user=other_user,
        access_token="a" * 20,
        refresh_token="r" * 20,
        fingerprint=fingerprint("r" * 20),
        access_token_issued_at=token.access_token_issued_at,
        access_token_expires_at=token.access_token_expires_at,
        refresh_token_expires_at=token.refresh_token_expires_at,
    )
    html = admin_client.get(CHANGELIST, {"q": token.fingerprint}).content.decode()
    assert token.fingerprint in html and other.fingerprint not in html


def test_refresh_action_says_undecryptable_not_reauthorization(
    admin_client: Any, token: PageroToken, settings: Any, pagero_mock: Any
) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    response = admin_client.post(
        CHANGELIST, {"action": "refresh_now", "_selected_action": [token.pk]}, follow=True
    )
    assert any("cannot be decrypted with the configured keys" in m for m in messages_of(response))
    assert pagero_mock.mock.counts["refresh_token"] == 0


# --- Pagero identities ("Sign in with Pagero") -----------------------------------------------

IDENTITIES = reverse("admin:django_pagero_oauth_pageroidentity_changelist")


@pytest.fixture
def identity(user: Any) -> Any:
    from django_pagero_oauth.models import PageroIdentity

    return PageroIdentity.objects.create(
        user=user, issuer="https://sso.pageroonline.com", subject="acme-ab"
    )


def test_identities_are_read_only(admin_client: Any, identity: Any) -> None:
    html = admin_client.get(IDENTITIES).content.decode()
    assert "acme-ab" in html and "alice" in html
    change = reverse("admin:django_pagero_oauth_pageroidentity_change", args=[identity.pk])
    html = admin_client.get(change).content.decode()
    assert 'name="subject"' not in html and 'name="_save"' not in html
    add = reverse("admin:django_pagero_oauth_pageroidentity_add")
    assert admin_client.get(add).status_code == 403
    assert (
        admin_client.post(change, {"subject": "mallory", "user": identity.user_id}).status_code
        == 403
    )
    identity.refresh_from_db()
    assert identity.subject == "acme-ab"


def test_unlink_deletes_the_identity_and_keeps_the_token(
    admin_client: Any, identity: Any, user: Any, pagero_token_factory: Any
) -> None:
    from django_pagero_oauth.models import PageroIdentity

    pagero_token_factory(user)
    html = admin_client.get(IDENTITIES).content.decode()
    assert 'value="unlink"' in html and 'value="delete_selected"' not in html
    response = admin_client.post(
        IDENTITIES, {"action": "unlink", "index": 0, "_selected_action": [identity.pk]}
    )
    assert "1 Pagero identity unlinked." in messages_of(response)
    assert not PageroIdentity.objects.exists()
    assert PageroToken.objects.filter(user=user).exists()


def test_unlink_needs_the_delete_permission(
    staff_client: Callable[..., Any], identity: Any
) -> None:
    from django_pagero_oauth.models import PageroIdentity

    client = staff_client("view_pageroidentity")
    assert "acme-ab" in client.get(IDENTITIES).content.decode()
    client.post(IDENTITIES, {"action": "unlink", "index": 0, "_selected_action": [identity.pk]})
    assert PageroIdentity.objects.filter(pk=identity.pk).exists()


# --- the delete page: never a local delete without telling Pagero -------------------------


def delete_url(token: PageroToken) -> str:
    return reverse("admin:django_pagero_oauth_pagerotoken_delete", args=[token.pk])


def test_the_delete_page_revokes_at_pagero_before_deleting(
    admin_client: Any, token: PageroToken, pagero_mock: Any
) -> None:
    assert admin_client.get(delete_url(token)).status_code == 200  # Django's confirmation

    response = admin_client.post(delete_url(token), {"post": "yes"})

    assert response.status_code == 302 and response["Location"] == CHANGELIST
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert messages_of(response) == [f"alice ({token.fingerprint}): revoked at Pagero and deleted."]


@pytest.mark.parametrize("fault", [Fault("revoke", status=503), Fault("revoke", drop=True)])
def test_the_delete_page_keeps_the_token_when_pagero_cannot_confirm(
    admin_client: Any, token: PageroToken, pagero_mock: Any, fault: Fault
) -> None:
    pagero_mock.mock.add_fault(fault)

    response = admin_client.post(delete_url(token), {"post": "yes"})

    assert response.status_code == 302 and response["Location"] == change_url(token)
    assert PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert "could not confirm the revocation" in messages_of(response)[0]
