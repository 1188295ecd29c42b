"""Tests of ``PageroIdentity`` (models.py): the linking rules, also under concurrency."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from django_pagero_oauth.exceptions import IdentityRefused
from django_pagero_oauth.models import PageroIdentity

ISSUER = "https://sso.pageroonline.com"


def link(user: Any, subject: str = "acme-ab", issuer: str = ISSUER) -> tuple[PageroIdentity, bool]:
    with transaction.atomic():
        return PageroIdentity.link(user, issuer=issuer, subject=subject)


def test_link_creates_once(user: Any) -> None:
    identity, created = link(user)
    assert created and (identity.user, identity.issuer, identity.subject) == (
        user,
        ISSUER,
        "acme-ab",
    )
    assert link(user) == (identity, False)
    assert "acme-ab" in str(identity)


def test_an_identity_of_another_user_is_refused(user: Any, other_user: Any) -> None:
    link(user)
    with pytest.raises(IdentityRefused) as refused:
        link(other_user)
    assert refused.value.error == "identity_taken"
    assert PageroIdentity.objects.get().user == user


def test_one_identity_per_user_and_issuer(user: Any) -> None:
    link(user)
    with pytest.raises(IdentityRefused) as refused:
        link(user, subject="another-company")
    assert refused.value.error == "other_identity_linked"
    _identity, created = link(user, subject="another-company", issuer="https://other.example")
    assert created and PageroIdentity.objects.filter(user=user).count() == 2


def test_the_same_subject_at_another_issuer_is_another_identity(user: Any, other_user: Any) -> None:
    link(user)
    assert link(other_user, issuer="https://other.example")[1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_links_of_one_identity_have_one_winner(run_in_threads: Any) -> None:
    users = [get_user_model().objects.create_user(f"user{i}") for i in range(8)]
    results = run_in_threads(lambda index: link(users[index]), n=8)
    winners = [result for result in results if isinstance(result, tuple)]
    refused = [result for result in results if isinstance(result, IdentityRefused)]
    assert len(winners) == 1 and len(refused) == 7, results
    assert {error.error for error in refused} == {"identity_taken"}
    assert PageroIdentity.objects.get().user == winners[0][0].user
