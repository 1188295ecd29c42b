"""A person connecting to Pagero in a real browser: log in, approve or deny at Pagero's login
page (the example project's mock), use the connection, let it expire, disconnect, and a
``fetch()`` from the page once the connection is gone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import DEMO_USER, fill_login_form

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import DemoSite

pytestmark = pytest.mark.browser

NewPage = Callable[[], "Page"]
Screenshot = Callable[..., Path]

INVOICE_NUMBERS = ["INV-1001", "INV-1002", "INV-1003"]
AUTHORIZE_PATH = "/mock-pagero/oauth/v2/oauth-authorize"


def expect_invoices_page(page: Page, site: DemoSite) -> None:
    """The protected page, showing what the (mock) Pagero API returned for the user."""
    from playwright.sync_api import expect

    expect(page).to_have_url(f"{site.url}/invoices/")
    expect(page.locator("main")).to_contain_text("Fetched from the Pagero API as Demo Company AB")
    expect(page.locator("main code").first).to_have_text("demo-company")
    expect(page.locator("tbody tr td:first-child")).to_have_text(INVOICE_NUMBERS)


def expect_mock_login_page(page: Page, site: DemoSite) -> None:
    """Pagero's login page, asked to send the user back to this site's callback."""
    from playwright.sync_api import expect

    expect(page).to_have_title("Mock Pagero login")
    url = urlsplit(page.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == site.url + AUTHORIZE_PATH
    query = parse_qs(url.query)
    assert query["client_id"] == ["demo-client-id"]
    assert query["redirect_uri"] == [f"{site.url}/pagero/callback/"]
    assert query["response_type"] == ["code"]
    assert query["state"][0]
    expect(page.get_by_role("button", name="Approve")).to_be_visible()


def test_login_then_protected_page_goes_through_pagero_and_shows_api_data(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    page.goto("/invoices/")
    expect(page).to_have_url(f"{demo_site.url}/accounts/login/?next=/invoices/")
    fill_login_form(page, *DEMO_USER)

    # Logged in, but not connected: the protected page sends the user to Pagero's login.
    expect_mock_login_page(page, demo_site)
    page.get_by_role("button", name="Approve").click()

    expect_invoices_page(page, demo_site)
    counts = demo_site.mock_counts()
    assert counts["authorization_code"] == 1
    assert counts["refresh_token"] == 0
    assert counts["api"] == 2  # v1/me and v1/documents
    (token,) = demo_site.tokens("demo")
    assert re.fullmatch(r"[0-9a-f]{12}", token["fingerprint"])
    screenshot(page)


def test_expired_access_token_is_refreshed_once_on_reload(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    page = new_page()
    demo_site.log_in(page, *DEMO_USER)
    demo_site.connect(page)
    (before,) = demo_site.tokens("demo")
    assert demo_site.mock_counts()["refresh_token"] == 0

    demo_site.expire_access_token("demo")  # ten minutes later
    page.reload()

    expect_invoices_page(page, demo_site)
    counts = demo_site.mock_counts()
    assert counts["refresh_token"] == 1
    assert counts["refresh_token_failed"] == 0
    assert counts["authorization_code"] == 1  # no new login at Pagero
    (after,) = demo_site.tokens("demo")
    assert after["fingerprint"] != before["fingerprint"]  # the single-use refresh token rotated
    assert after["access_token_expires_at"] > before["access_token_expires_at"]
    screenshot(page)


def test_deny_at_pagero_shows_a_clear_message_and_stores_no_token(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    demo_site.log_in(page, *DEMO_USER)
    page.goto("/invoices/")
    expect_mock_login_page(page, demo_site)
    with page.expect_response(lambda r: "/pagero/callback/" in r.url) as callback:
        page.get_by_role("button", name="Deny").click()

    assert callback.value.status == 400
    expect(page.get_by_role("heading")).to_have_text("Connecting to Pagero failed")
    expect(page.get_by_role("alert")).to_have_text(
        "The connection to Pagero was cancelled or denied."
    )
    # "Try again" starts a new login that still leads to the page that was asked for.
    expect(page.get_by_role("link", name="Try again")).to_have_attribute(
        "href", "/pagero/login/?next=%2Finvoices%2F"
    )
    assert demo_site.fingerprints() == []
    counts = demo_site.mock_counts()
    assert counts["authorize"] == 1
    assert counts["authorization_code"] == 0  # no code, so nothing was exchanged
    screenshot(page)

    page.goto("/")
    expect(page.locator(".card .status")).to_have_text("You are not connected to Pagero yet.")


def test_disconnect_sends_the_protected_page_to_pagero_login_again(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    demo_site.log_in(page, *DEMO_USER)
    demo_site.connect(page)

    page.goto("/")
    expect(page.locator(".card .status")).to_contain_text("Connected as demo-company")
    page.get_by_role("button", name="Disconnect from Pagero").click()

    expect(page).to_have_url(f"{demo_site.url}/")
    expect(page.locator(".messages li.success")).to_have_text(
        "Disconnected from Pagero: the connection was revoked and removed."
    )
    expect(page.locator(".card .status")).to_have_text("You are not connected to Pagero yet.")
    assert demo_site.fingerprints() == []
    assert demo_site.mock_counts()["revoke"] == 1

    page.goto("/invoices/")
    expect_mock_login_page(page, demo_site)
    screenshot(page)


def test_fetch_after_disconnect_gets_401_json_with_login_url(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    demo_site.log_in(page, *DEMO_USER)
    demo_site.connect(page)
    result = page.locator("#fetch-result")

    # Connected: the page's fetch() gets the data.
    page.get_by_role("button", name="Fetch /api/invoices.json").click()
    expect(result).to_have_text(re.compile(r"^200\n"))
    status, body = result.inner_text().split("\n", 1)
    assert status == "200"
    assert [doc["number"] for doc in json.loads(body)["documents"]] == INVOICE_NUMBERS

    # Disconnect in another tab; this one still shows the invoices.
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Disconnect from Pagero").click()
    expect(other_tab.locator(".messages li.success")).to_contain_text("Disconnected from Pagero")

    page.get_by_role("button", name="Fetch /api/invoices.json").click()
    expect(result).to_have_text(re.compile(r"^401\n"))
    status, body = result.inner_text().split("\n", 1)
    assert status == "401"
    login_url = "/pagero/login/?next=%2Fapi%2Finvoices.json"
    assert json.loads(body) == {"error": "pagero_authorization_required", "login_url": login_url}

    # The same request made by hand: JSON, not a redirect to an HTML login page.
    answer = page.evaluate(
        """async (url) => {
            const response = await fetch(url, {headers: {Accept: "application/json"}});
            return {
                status: response.status,
                redirected: response.redirected,
                type: response.headers.get("Content-Type"),
                body: await response.json(),
            };
        }""",
        "/api/invoices.json",
    )
    assert answer == {
        "status": 401,
        "redirected": False,
        "type": "application/json",
        "body": {"error": "pagero_authorization_required", "login_url": login_url},
    }
    screenshot(page)

    # The login_url starts a new connection at Pagero.
    page.goto(login_url)
    expect_mock_login_page(page, demo_site)
