"""``next`` never sends the user off the site (item 11): not from the login view, not after
the callback (where it was carried in the session), not from the disconnect view.

"Stays on the site" is judged as a browser would: tabs and newlines removed, surrounding
control characters and spaces stripped, backslashes read as slashes, then resolved against the
page's URL; the result must be http(s) on ``testserver``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from .conftest import CALLBACK_PATH, DISCONNECT_PATH, LOGIN_PATH, Browser

HOSTILE_NEXT = [
    "//evil.example",
    "///evil.example",
    "////evil.example/",
    "https://evil.example",
    "http://evil.example/path?q=1",
    "HTTPS://EVIL.EXAMPLE",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "\\evil.example",
    "https:/\\evil.example",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "\x00//evil.example",
    "https://testserver@evil.example/",
    "//testserver@evil.example",
    "https://testserver.evil.example/",
    "https://evil.example\\@testserver/",
    "https://evil.example#@testserver",
    "https://evil.example?@testserver",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "https%3A%2F%2Fevil.example",
    "//evil%2Eexample",
    "%09//evil.example",
    "/%09/evil.example",
    "//\uff45\uff56\uff49\uff4c.example",  # full-width letters: IDNA maps them to "evil"
    "https://evil.example%00.testserver/",
    "/\r\nSet-Cookie: injected=1",
    "/\r\nLocation: https://evil.example",
]

#: Relative URLs that do stay on the site: kept, so the filter is not simply "drop everything".
SAFE_NEXT = ["/plain/", "/plain/?a=1&b=2", "/protected/#frag", "http://testserver/plain/"]


def _browser_normalise(url: str) -> str:
    """What a WHATWG URL parser does to a Location before resolving it."""
    url = re.sub(r"[\t\n\r]", "", url)
    url = url.strip("".join(chr(c) for c in range(0x21)))
    return url.replace("\\", "/")


def assert_stays_on_site(url: str, base: str = "http://testserver/pagero/callback/") -> None:
    resolved = urlsplit(urljoin(base, _browser_normalise(url)))
    assert resolved.scheme in ("http", "https"), url
    assert resolved.hostname == "testserver", url
    assert "evil" not in (resolved.netloc or "").lower(), url


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html) + re.findall(r'name="next" value="([^"]*)"', html)


def test_the_judge_itself() -> None:
    """Control: the judging function catches the classic forms."""
    for bad in ("//evil.example", "/\\evil.example", "javascript:alert(1)", " //evil.example"):
        with pytest.raises(AssertionError):
            assert_stays_on_site(bad)
    for good in SAFE_NEXT:
        assert_stays_on_site(good)


@pytest.mark.parametrize("next_url", HOSTILE_NEXT)
def test_login_and_callback_never_redirect_off_site(
    browser: Browser, pagero_mock: Any, next_url: str
) -> None:
    authorize_url = browser.start_login(next_url)
    (stored_next,) = [flow["next_url"] for flow in browser.pending_flows().values()]
    assert_stays_on_site(stored_next)

    response = browser.callback(browser.pagero_answer(authorize_url))

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])
    assert "Set-Cookie: injected" not in str(response.serialize_headers())
    assert "injected" not in response.cookies


@pytest.mark.parametrize("next_url", SAFE_NEXT)
def test_local_next_is_kept(browser: Browser, next_url: str) -> None:
    response = browser.callback(browser.pagero_answer(browser.start_login(next_url)))
    assert response.status_code == 302
    assert response["Location"] == next_url


def test_next_with_a_secure_request_is_not_downgraded(browser: Browser, pagero_mock: Any) -> None:
    """On an https site, ``next=http://testserver/...`` would leave TLS: not kept."""
    response = browser.client.get(LOGIN_PATH, {"next": "http://testserver/plain/"}, secure=True)
    assert response.status_code == 302
    (stored_next,) = [flow["next_url"] for flow in browser.pending_flows().values()]
    assert not stored_next.startswith("http:")


@pytest.mark.parametrize("next_url", HOSTILE_NEXT)
@pytest.mark.parametrize("connected", [True, False], ids=["connected", "not connected"])
def test_disconnect_never_links_or_redirects_off_site(
    user_client: Client,
    user: Any,
    pagero_token_factory: Any,
    next_url: str,
    connected: bool,
) -> None:
    if connected:
        pagero_token_factory(user)
    page = user_client.get(DISCONNECT_PATH, {"next": next_url})
    assert page.status_code == 200
    links = _hrefs(page.content.decode())
    assert links
    for link in links:
        assert_stays_on_site(link.replace("&amp;", "&"))

    response = user_client.post(DISCONNECT_PATH, {"next": next_url, "local_only": "1"})

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


def test_callback_ignores_a_next_in_its_own_query(browser: Browser) -> None:
    """The callback redirects where the flow said, not where its URL says."""
    callback_url = browser.pagero_answer(browser.start_login("/plain/"))
    response = browser.callback(callback_url + "&next=https%3A%2F%2Fevil.example")
    assert response["Location"] == "/plain/"


def test_callback_path_constant_is_the_real_one() -> None:
    from django.urls import reverse

    assert reverse("pagero_oauth:callback") == CALLBACK_PATH
