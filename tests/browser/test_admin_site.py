"""The Pagero tokens in Django's admin, in a real browser: what staff see (status and
fingerprint, never a token), the "Refresh now" and "Revoke" actions, and a view-only staff user
who can look but not act."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import ADMIN_USER, DEMO_USER, VIEWER_USER

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import DemoSite

pytestmark = pytest.mark.browser

NewPage = Callable[[], "Page"]
Screenshot = Callable[..., Path]

CHANGELIST = "/admin/django_pagero_oauth/pagerotoken/"
LEAK_WINDOW = 8  # no run of this many characters of a token may appear in a page


def assert_no_token_text(page: Page, tokens: Sequence[dict[str, Any]]) -> None:
    """No ``LEAK_WINDOW`` consecutive characters of any token (decrypted or as stored) in the
    page's HTML. The message says where, never what."""
    html = page.content()
    for number, token in enumerate(tokens):
        for kind, secret in enumerate(token["secrets"]):
            for start in range(len(secret) - LEAK_WINDOW + 1):
                assert secret[start : start + LEAK_WINDOW] not in html, (
                    f"{page.url} shows characters {start}-{start + LEAK_WINDOW} of secret "
                    f"#{kind} of token #{number}"
                )


def post_action_as_script(page: Page, action: str, pk: int) -> int:
    """POST an admin action for one token from the page, as a hand-made form would; the
    status."""
    status: int = page.evaluate(
        """async ([url, action, pk]) => {
            const body = new URLSearchParams({
                csrfmiddlewaretoken: document.querySelector("[name=csrfmiddlewaretoken]").value,
                action: action,
                index: "0",
                _selected_action: String(pk),
            });
            const response = await fetch(url, {method: "POST", body: body});
            return response.status;
        }""",
        [CHANGELIST, action, pk],
    )
    return status


def test_staff_see_status_and_fingerprint_only_and_run_refresh_and_revoke(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    user = new_page()
    demo_site.log_in(user, *DEMO_USER)
    demo_site.connect(user)
    (token,) = demo_site.tokens()

    # --- a superuser: the list and the token's page ---------------------------------------
    admin = new_page()
    demo_site.log_in(admin, *ADMIN_USER)
    admin.goto(CHANGELIST)
    row = admin.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".field-user")).to_have_text("demo")
    expect(row.locator(".field-health_display")).to_have_text("Valid")
    expect(row.locator(".field-fingerprint")).to_have_text(token["fingerprint"])
    assert_no_token_text(admin, [token])

    row.locator(".field-user a").click()
    expect(admin.locator(".field-fingerprint .readonly")).to_have_text(token["fingerprint"])
    expect(admin.locator(".object-tools").get_by_role("button")).to_have_text(
        ["Refresh now", "Revoke"]
    )
    assert_no_token_text(admin, [token])
    token_page = admin.url

    # --- a view-only staff user: sees the list, cannot act ---------------------------------
    viewer = new_page()
    demo_site.log_in(viewer, *VIEWER_USER)
    viewer.goto(CHANGELIST)
    expect(viewer.locator("#result_list tbody tr .field-fingerprint")).to_have_text(
        token["fingerprint"]
    )
    expect(viewer.locator("select[name=action]")).to_have_count(0)
    expect(viewer.locator("input.action-select")).to_have_count(0)
    assert_no_token_text(viewer, [token])
    screenshot(viewer, "viewer")
    viewer.goto(token_page)
    expect(viewer.locator(".field-fingerprint .readonly")).to_have_text(token["fingerprint"])
    expect(viewer.locator(".object-tools").get_by_role("button")).to_have_count(0)
    # Nor can a hand-made POST run them.
    for action in ("refresh_now", "revoke"):
        assert post_action_as_script(viewer, action, token["pk"]) == 200
    assert demo_site.fingerprints() == [token["fingerprint"]]
    counts = demo_site.mock_counts()
    assert (counts["refresh_token"], counts["revoke"]) == (0, 0)

    # --- "Refresh now", from the list --------------------------------------------------------
    admin.goto(CHANGELIST)
    admin.locator("#result_list input.action-select").check()
    admin.locator("select[name=action]").select_option(label="Refresh now")
    admin.get_by_role("button", name="Go").click()
    (refreshed,) = demo_site.tokens()
    assert refreshed["fingerprint"] != token["fingerprint"]
    # (The admin capitalises the first letter of every message.)
    expect(admin.locator(".messagelist li.success")).to_have_text(
        f"Demo: refreshed, new fingerprint {refreshed['fingerprint']}."
    )
    expect(admin.locator("#result_list .field-fingerprint")).to_have_text(refreshed["fingerprint"])
    assert demo_site.mock_counts()["refresh_token"] == 1
    assert_no_token_text(admin, [token, refreshed])

    # --- "Revoke", from the token's page ----------------------------------------------------
    admin.goto(token_page)
    admin.locator(".object-tools").get_by_role("button", name="Revoke").click()
    expect(admin.locator(".messagelist li.success")).to_have_text(
        f"Demo ({refreshed['fingerprint']}): revoked at Pagero and deleted."
    )
    expect(admin.locator("#result_list tbody tr")).to_have_count(0)
    assert demo_site.fingerprints() == []
    assert demo_site.mock_counts()["revoke"] == 1
    assert_no_token_text(admin, [token, refreshed])
    screenshot(admin)
