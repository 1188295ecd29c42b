"""What this proves: the tokens of a code exchange whose sign-in is refused do not stay valid
at Pagero. Nothing stores them (an unknown identity, an identity of another user, an
``id_token`` that fails, sign-in switched off mid-flow, a new identity waiting for the user's
confirmation), so with ``REVOKE_URL`` they are revoked (RFC 7009) once the answer is sent:
checked at the strict mock, which kills the refresh token and its access tokens. A revocation
that fails changes nothing in the answer; without ``REVOKE_URL`` nothing is sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from tests.test_signin import CALLBACK, LINK, LOGIN, at_pagero, single, start


@pytest.fixture(autouse=True)
def _sign_in_on(sign_in_enabled: None) -> None:
    pass


def _all_tokens_dead(mock: MockPageroServer) -> bool:
    tokens = list(mock.mock._tokens)
    assert tokens, "the mock issued no token"
    return not any(
        mock.mock.is_refresh_token_valid(token) or mock.mock.is_access_token_valid(token)
        for token in tokens
    )


def _unknown_identity(client: Client, user: Any, other_user: Any, mock: Any, settings: Any) -> Any:
    return client.get(CALLBACK, single(at_pagero(start(client), "nobody-knows")))


def _identity_taken(client: Client, user: Any, other_user: Any, mock: Any, settings: Any) -> Any:
    PageroIdentity.objects.create(user=user, issuer=mock.url, subject="acme-ab")
    client.force_login(other_user)
    return client.get(CALLBACK, single(at_pagero(start(client), "acme-ab")))


def _bad_id_token(client: Client, user: Any, other_user: Any, mock: Any, settings: Any) -> Any:
    PageroIdentity.objects.create(user=user, issuer=mock.url, subject="acme-ab")
    mock.mock.add_fault(Fault(endpoint="token", id_token="bad_signature"))
    return client.get(CALLBACK, single(at_pagero(start(client), "acme-ab")))


def _switched_off(client: Client, user: Any, other_user: Any, mock: Any, settings: Any) -> Any:
    PageroIdentity.objects.create(user=user, issuer=mock.url, subject="acme-ab")
    back = at_pagero(start(client), "acme-ab")
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": False}
    return client.get(CALLBACK, single(back))


def _link_to_confirm(client: Client, user: Any, other_user: Any, mock: Any, settings: Any) -> Any:
    client.force_login(user)
    return client.get(CALLBACK, single(at_pagero(start(client), "acme-ab")))


REFUSALS = {
    "unknown identity": (_unknown_identity, 403),
    "identity of another user": (_identity_taken, 403),
    "id_token fails": (_bad_id_token, 400),
    "sign-in switched off": (_switched_off, 403),
    "new identity to confirm": (_link_to_confirm, 302),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_tokens_of_a_refused_sign_in_are_revoked_at_pagero(
    client: Client,
    user: Any,
    other_user: Any,
    pagero_mock: MockPageroServer,
    settings: Any,
    case: str,
) -> None:
    walk, status = REFUSALS[case]
    response = walk(client, user, other_user, pagero_mock, settings)
    assert response.status_code == status, response.content
    assert not PageroToken.objects.exists()
    assert pagero_mock.mock.counts["authorization_code"] == 1  # tokens were obtained
    assert pagero_mock.mock.counts["revoke"] == 1
    assert _all_tokens_dead(pagero_mock), "a refused sign-in left live tokens at Pagero"


def test_a_failing_revocation_does_not_change_the_answer(
    client: Client, user: Any, pagero_mock: MockPageroServer, caplog: pytest.LogCaptureFixture
) -> None:
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    response = client.get(CALLBACK, single(at_pagero(start(client), "nobody-knows")))
    assert response.status_code == 403
    assert "not linked to a user of this site" in response.content.decode()
    assert "stays valid at Pagero" in caplog.text


def test_without_revoke_url_nothing_is_sent(
    client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    response = client.get(CALLBACK, single(at_pagero(start(client), "nobody-knows")))
    assert response.status_code == 403
    assert pagero_mock.mock.counts["revoke"] == 0


def test_a_sign_in_that_is_kept_revokes_nothing(
    client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    assert client.get(CALLBACK, single(at_pagero(start(client), "acme-ab"))).status_code == 302
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(PageroToken.objects.get().refresh_token)


def test_a_connect_that_waits_for_a_link_keeps_its_token(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    response = user_client.get(CALLBACK, single(at_pagero(start(user_client, LOGIN), "acme-ab")))
    assert response["Location"] == LINK
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(PageroToken.objects.get().refresh_token)
