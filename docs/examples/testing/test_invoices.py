# invoices/tests.py
from django_pagero_oauth.testing.mock import OMIT, Fault


def test_invoices_page_refreshes_once(client, django_user_model, pagero_mock, pagero_token_factory):
    user = django_user_model.objects.create_user("ann", password="pw")
    pagero_token_factory(user, expired=True)
    client.force_login(user)

    response = client.get("/invoices/")

    assert response.status_code == 200
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_pagero_down_is_a_503_page(client, django_user_model, pagero_mock, pagero_token_factory):
    user = django_user_model.objects.create_user("ann", password="pw")
    pagero_token_factory(user, expired=True)
    client.force_login(user)
    # The next refresh gets a 503 with Retry-After; the refresh token is not consumed.
    pagero_mock.mock.add_fault(
        Fault("token", grant_type="refresh_token", status=503, headers=[("Retry-After", "30")])
    )

    response = client.get("/invoices/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"


def more_faults(pagero_mock):
    # Pagero does the refresh but the connection drops before the answer arrives.
    pagero_mock.mock.add_fault(Fault("token", grant_type="refresh_token", drop=True, process=True))
    # A 503 only after 2 s (a shorter TIMEOUT times out first; nothing is consumed).
    pagero_mock.mock.add_fault(Fault("token", delay=2.0))
    # No iss in the redirect back; a refresh answer without a new refresh token.
    pagero_mock.mock.add_fault(Fault("authorize", iss=OMIT))
    pagero_mock.mock.add_fault(Fault("token", omit_refresh_token=True))
    # Pagero rotates for real, but its answer is off-spec: a string expires_in, no scope.
    pagero_mock.mock.add_fault(Fault("token", fields={"expires_in": "600", "scope": OMIT}))
    # Revoking a refresh token revokes the whole grant: the user's later logins too.
    pagero_mock.mock.add_fault(Fault("revoke", revoke_grant=True))

    # Not a fault: the user withdrew this site's access at Pagero. Every token of that
    # publicid dies; the site learns it at its next API call (401) or refresh (invalid_grant).
    pagero_mock.mock.revoke_grant("demo-company")


def test_the_faults_are_accepted(pagero_mock):
    more_faults(pagero_mock)
