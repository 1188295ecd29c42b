"""A person signing in with Pagero in a real browser: the login page's button, Pagero's login
page (the example project's mock), and back logged in, with the API connected by the same
flow. A Pagero account that no user is linked to is refused, and nobody is logged in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from .test_connection import expect_invoices_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import DemoSite

pytestmark = pytest.mark.browser

NewPage = Callable[[], "Page"]
Screenshot = Callable[..., Path]


def test_sign_in_with_pagero_from_the_login_page(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    page.goto("/invoices/")
    expect(page).to_have_url(f"{demo_site.url}/accounts/login/?next=/invoices/")
    page.get_by_role("link", name="Sign in with Pagero").click()

    expect(page).to_have_title("Mock Pagero login")
    query = parse_qs(urlsplit(page.url).query)
    assert "openid" in query["scope"][0].split() and query["nonce"][0]
    page.get_by_role("button", name="Approve").click()  # as demo-company, linked to demo

    expect_invoices_page(page, demo_site)
    expect(page.locator("header")).to_contain_text("Logged in as demo")
    counts = demo_site.mock_counts()
    assert counts["authorization_code"] == 1 and counts["jwks"] == 1
    assert len(demo_site.tokens("demo")) == 1  # the same flow connected the API
    screenshot(page)


def test_an_unlinked_pagero_account_is_refused(
    demo_site: DemoSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with Pagero").click()
    page.get_by_label("Company public id").fill("acme-unknown")
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("alert")).to_contain_text("not linked to a user of this site")
    expect(page.get_by_role("link", name="Log in to link your Pagero account")).to_be_visible()
    assert demo_site.tokens() == []
    page.goto("/")
    expect(page.locator("main")).to_contain_text("You are not logged in")
    screenshot(page)
