"""The package's own pages in a real browser, with nothing of them overridden: every form the
package renders is submitted in Chromium, on a plain site (``plain_site/``: what
``startproject`` plus the quick start make) served by gunicorn, over HTTP and over HTTPS as in
production (a self-signed certificate made for the test, ``SECURE_SSL_REDIRECT``, secure session
and CSRF cookies, HSTS), against the bundled mock Pagero server on a real socket.

Each POST is checked where Django's CSRF check looks: the answer is not a 403, and the browser
sent this site's origin (a page that sends no referrer makes Chromium send ``Origin: null``,
which Django refuses).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from django_pagero_oauth.testing.mock import Fault

from .conftest import page_factory
from .plain_site.server import ADMIN_USER, PlainSite, start_plain_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Response

pytestmark = pytest.mark.browser

NewPage = Callable[[], "Page"]
Screenshot = Callable[..., Path]

PASSWORD = "correct horse battery"  # every test user's
CHANGELIST = "/admin/django_pagero_oauth/pagerotoken/"


@pytest.fixture(scope="module", params=["http", "https"])
def plain_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlainSite]:
    """The plain site over ``http`` or ``https`` (one server for the module's tests)."""
    https = request.param == "https"
    site = start_plain_site(tmp_path_factory.mktemp(f"plain-site-{request.param}"), https=https)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def new_page(
    browser: Browser, plain_site: PlainSite, request: pytest.FixtureRequest
) -> Iterator[NewPage]:
    """``new_page()``: a page in a fresh browser context on the plain site; the mock's counters
    and faults start from zero, and the server's log lines of this test are printed (pytest
    shows them when it fails)."""
    plain_site.mock.mock.reset()
    start = plain_site.log.stat().st_size
    try:
        with page_factory(
            browser, plain_site.url, request, ignore_https_errors=plain_site.https
        ) as make:
            yield make
    finally:
        with plain_site.log.open("rb") as log:
            log.seek(start)
            print(log.read().decode(errors="replace"))


# --- the site's state, as an operator sees it -----------------------------------------------

CREATE_USER = """
from django.contrib.auth import get_user_model
get_user_model().objects.create_user(USERNAME, password=PASSWORD)
result = True
"""

LINK_IDENTITY = """
from django.contrib.auth import get_user_model
from django.db import transaction
from django_pagero_oauth.conf import app_settings
from django_pagero_oauth.models import PageroIdentity
with transaction.atomic():
    user = get_user_model().objects.get(username=USERNAME)
    PageroIdentity.link(user, issuer=app_settings.ISSUER, subject=SUBJECT)
result = True
"""

STATE = """
from django_pagero_oauth.models import PageroIdentity, PageroToken
result = {
    "tokens": PageroToken.objects.filter(user__username=USERNAME).count(),
    "identities": list(
        PageroIdentity.objects.filter(user__username=USERNAME).values_list("subject", flat=True)
    ),
}
"""


def create_user(site: PlainSite, username: str, *, identity: str = "") -> None:
    """A user of the site; with ``identity``, their Pagero account (that ``publicid``) linked."""
    assert site.run(CREATE_USER, USERNAME=username, PASSWORD=PASSWORD)
    if identity:
        assert site.run(LINK_IDENTITY, USERNAME=username, SUBJECT=identity)


def state_of(site: PlainSite, username: str) -> dict[str, Any]:
    """How many tokens ``username`` has, and the subjects of their linked identities."""
    state: dict[str, Any] = site.run(STATE, USERNAME=username)
    return state


# --- as a person in the browser -------------------------------------------------------------


def log_in(page: Page, username: str) -> None:
    """The site's login form (``page`` is on it); done when the browser has left it."""
    from playwright.sync_api import expect

    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def approve_at_pagero(page: Page, publicid: str) -> None:
    """The mock Pagero's login page: approve as the company ``publicid``."""
    from playwright.sync_api import expect

    expect(page).to_have_title("Mock Pagero login")
    page.get_by_label("Company public id").fill(publicid)
    page.get_by_role("button", name="Approve").click()


def connect(page: Page, site: PlainSite, publicid: str) -> None:
    """The protected page sends the logged-in user to Pagero, and back once approved."""
    from playwright.sync_api import expect

    page.goto("/invoices/")
    approve_at_pagero(page, publicid)
    expect(page).to_have_url(f"{site.url}/invoices/")
    expect(page.locator(".company")).to_have_text(f"Demo Company AB ({publicid})")


def submit(page: Page, site: PlainSite, path: str, button: str) -> Response:
    """Click ``button`` of a form that POSTs to ``path``; the answer, once checked as Django's
    CSRF check sees the request: it was not refused, the browser sent this site's origin, and
    a same-origin ``Referer`` (what Django compares over HTTPS when there is no ``Origin``)."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.split("?")[0] == site.url + path
    ) as posted:
        page.get_by_role("button", name=button, exact=True).click()
    response = posted.value
    assert response.status != 403, f"POST {path} refused:\n{response.text()}"
    assert response.request.header_value("origin") == site.url
    assert (response.request.header_value("referer") or "").startswith(site.url + "/")
    return response


def expect_home_message(page: Page, site: PlainSite, text: str) -> None:
    from playwright.sync_api import expect

    expect(page).to_have_url(f"{site.url}/")
    expect(page.locator(".messages")).to_contain_text(text)


# --- the tests ------------------------------------------------------------------------------


def test_connect_from_the_protected_page(
    plain_site: PlainSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "connects")
    page.goto("/invoices/")
    log_in(page, "connects")  # then on to Pagero, to come back to the protected page
    expect(page).to_have_title("Mock Pagero login")
    screenshot(page, "mock-login")
    approve_at_pagero(page, "connects-company")
    expect(page).to_have_url(f"{plain_site.url}/invoices/")
    expect(page.locator(".company")).to_have_text("Demo Company AB (connects-company)")

    assert state_of(plain_site, "connects")["tokens"] == 1
    assert plain_site.mock.mock.counts["authorization_code"] == 1
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["sessionid"]["secure"] is plain_site.https
    assert cookies["csrftoken"]["secure"] is plain_site.https
    hsts = plain_site.http.get(f"{plain_site.url}/accounts/login/", timeout=30).headers
    assert ("Strict-Transport-Security" in hsts) is plain_site.https


def test_disconnect_keeps_the_linked_account(plain_site: PlainSite, new_page: NewPage) -> None:
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "disconnects", identity="disconnects-company")
    page.goto("/accounts/login/")
    log_in(page, "disconnects")
    connect(page, plain_site, "disconnects-company")

    page.goto("/")
    page.get_by_role("link", name="Disconnect from Pagero").click()
    expect(page.get_by_role("heading")).to_have_text("Disconnect from Pagero")
    expect(page.get_by_role("checkbox")).not_to_be_checked()
    submit(page, plain_site, "/pagero/disconnect/", "Disconnect")

    expect_home_message(page, plain_site, "the connection was revoked and removed")
    assert state_of(plain_site, "disconnects") == {
        "tokens": 0,
        "identities": ["disconnects-company"],
    }
    assert plain_site.mock.mock.counts["revoke"] == 1


def test_disconnect_and_unlink_the_account(
    plain_site: PlainSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "unlinks-too", identity="unlinks-too-company")
    page.goto("/accounts/login/")
    log_in(page, "unlinks-too")
    connect(page, plain_site, "unlinks-too-company")

    page.goto("/pagero/disconnect/?next=/")
    page.get_by_role("checkbox", name=re.compile("Also unlink my Pagero account")).check()
    screenshot(page)
    submit(page, plain_site, "/pagero/disconnect/", "Disconnect")

    expect_home_message(page, plain_site, "Your Pagero account was unlinked")
    expect(page.locator(".messages")).to_contain_text("the connection was revoked and removed")
    assert state_of(plain_site, "unlinks-too") == {"tokens": 0, "identities": []}


def test_remove_from_this_site_only_when_pagero_fails(
    plain_site: PlainSite, new_page: NewPage
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "removes-locally")
    page.goto("/accounts/login/")
    log_in(page, "removes-locally")
    connect(page, plain_site, "removes-locally-company")

    plain_site.mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    page.goto("/pagero/disconnect/?next=/")
    assert submit(page, plain_site, "/pagero/disconnect/", "Disconnect").status == 503
    expect(page.get_by_role("alert")).to_be_visible()
    assert state_of(plain_site, "removes-locally")["tokens"] == 1  # kept: Pagero did not confirm

    submit(page, plain_site, "/pagero/disconnect/", "Remove from this site only")
    expect_home_message(page, plain_site, "Pagero was not told")
    assert state_of(plain_site, "removes-locally")["tokens"] == 0


def test_unlink_without_a_connection(plain_site: PlainSite, new_page: NewPage) -> None:
    page = new_page()
    create_user(plain_site, "unlinks", identity="unlinks-company")
    page.goto("/accounts/login/")
    log_in(page, "unlinks")

    page.goto("/pagero/disconnect/?next=/")
    submit(page, plain_site, "/pagero/disconnect/", "Unlink my Pagero account")

    expect_home_message(page, plain_site, "Your Pagero account was unlinked")
    assert state_of(plain_site, "unlinks") == {"tokens": 0, "identities": []}


@pytest.mark.parametrize("confirm", [True, False], ids=["link", "do not link"])
def test_link_confirmation(plain_site: PlainSite, new_page: NewPage, confirm: bool) -> None:
    """A logged-in user signs in with a Pagero account no one has: asked before it is linked."""
    from playwright.sync_api import expect

    username = f"links-{confirm}".lower()
    page = new_page()
    create_user(plain_site, username)
    page.goto("/accounts/login/")
    log_in(page, username)

    page.goto("/pagero/sign-in/")
    approve_at_pagero(page, f"{username}-company")
    expect(page).to_have_url(f"{plain_site.url}/pagero/link/")
    expect(page.get_by_role("heading")).to_have_text("Link your Pagero account")
    submit(page, plain_site, "/pagero/link/", "Link" if confirm else "Do not link")

    if confirm:
        expect_home_message(page, plain_site, "Your Pagero account is linked")
        assert state_of(plain_site, username)["identities"] == [f"{username}-company"]
    else:
        expect_home_message(page, plain_site, "Nothing was linked.")
        assert state_of(plain_site, username)["identities"] == []


def test_sign_in_with_pagero(plain_site: PlainSite, new_page: NewPage) -> None:
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "signs-in", identity="signs-in-company")
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with Pagero").click()
    approve_at_pagero(page, "signs-in-company")

    expect(page).to_have_url(f"{plain_site.url}/")
    expect(page.locator(".who")).to_have_text("Logged in as signs-in")
    expect(page.locator(".connection")).to_have_text("Connected to Pagero")


def test_refused_identity_page_leads_to_linking_it(
    plain_site: PlainSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    """An unknown Pagero account is refused; the refusal page's link logs the user in, signs in
    with Pagero again and asks to link it; then "Sign in with Pagero" logs them in."""
    from playwright.sync_api import expect

    page = new_page()
    create_user(plain_site, "refused")
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with Pagero").click()
    with page.expect_response(lambda r: "/pagero/callback/" in r.url) as callback:
        approve_at_pagero(page, "refused-company")
    assert callback.value.status == 403
    expect(page.get_by_role("heading")).to_have_text("Signing in with Pagero failed")
    assert callback.value.header_value("referrer-policy") == "no-referrer"  # code in its URL

    page.get_by_role("link", name="Log in to link your Pagero account").click()
    log_in(page, "refused")
    approve_at_pagero(page, "refused-company")
    expect(page).to_have_url(f"{plain_site.url}/pagero/link/")
    screenshot(page)
    submit(page, plain_site, "/pagero/link/", "Link")
    expect_home_message(page, plain_site, "Your Pagero account is linked")

    other_browser = new_page()
    other_browser.goto("/accounts/login/")
    other_browser.get_by_role("link", name="Sign in with Pagero").click()
    approve_at_pagero(other_browser, "refused-company")
    expect(other_browser.locator(".who")).to_have_text("Logged in as refused")


def test_admin_list_at_1280_pixels_then_refresh_and_revoke(
    plain_site: PlainSite, new_page: NewPage, screenshot: Screenshot
) -> None:
    """The token list is whole at 1280 pixels with the admin's sidebars open; its "Refresh now"
    action, then the token page's buttons (the package's admin template): "Refresh now" and
    "Revoke"."""
    from playwright.sync_api import expect

    username = "pagero-0123456789abcdef0123"  # as long as those "Sign in with Pagero" creates
    user = new_page()
    create_user(plain_site, username)
    user.goto("/accounts/login/")
    log_in(user, username)
    connect(user, plain_site, "administered-company")

    admin = new_page()
    admin.set_viewport_size({"width": 1280, "height": 800})
    admin.goto(f"/admin/login/?next={CHANGELIST}")
    admin.get_by_label("Username").fill(ADMIN_USER[0])
    admin.get_by_label("Password").fill(ADMIN_USER[1])
    admin.get_by_role("button", name="Log in").click()
    row = admin.locator("#result_list tbody tr", has_text=username)
    expect(row).to_have_count(1)
    screenshot(admin, "changelist")

    # Every column is whole: the list does not scroll sideways, no heading is cut.
    widths = admin.locator("#changelist .results").evaluate(
        "e => ({list: e.scrollWidth, shown: e.clientWidth, columns: Array.from("
        "e.querySelectorAll('thead th'), th => [th.textContent.trim(), th.offsetWidth])})"
    )
    assert widths["list"] <= widths["shown"], f"the list scrolls sideways: {widths}"
    expect(admin.locator("#result_list thead th")).to_have_text(
        ["", "User", "Status", "Refresh token expires", "Last refreshed", "Fingerprint"],
        ignore_case=True,
    )
    expect(row.locator(".field-last_refreshed_display")).to_have_text("-")
    expect(admin.locator("#changelist .toplinks")).to_have_count(0)  # no date hierarchy

    refreshed = f"{username.capitalize()}: refreshed"
    row.locator("input.action-select").check()
    admin.locator("select[name=action]").select_option("refresh_now")
    submit(admin, plain_site, CHANGELIST, "Go")
    expect(admin.locator(".messagelist")).to_contain_text(refreshed)
    expect(row.locator(".field-last_refreshed_display")).to_contain_text("ago")

    row.locator(".field-user a").click()
    submit(admin, plain_site, CHANGELIST, "Refresh now")
    expect(admin.locator(".messagelist")).to_contain_text(refreshed)
    assert plain_site.mock.mock.counts["refresh_token"] == 2

    row.locator(".field-user a").click()
    submit(admin, plain_site, CHANGELIST, "Revoke")
    expect(admin.locator(".messagelist")).to_contain_text("revoked at Pagero and deleted")
    assert plain_site.mock.mock.counts["revoke"] == 1
    assert state_of(plain_site, username)["tokens"] == 0
