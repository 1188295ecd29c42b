"""Regenerate the documentation's screenshots (docs/*.png) from the demo, in Debian's Chromium.

    .venv/bin/python scripts/docs_screenshots.py

Needs the "browser" extra (Playwright) and /usr/bin/chromium. Serves the example project on a
free port with a throw-away SQLite database, logs in as demo, connects through the bundled mock,
then opens the admin as admin; saves three small PNGs. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_ARGS  # noqa: E402  (the browser suite's flags)

DOCS = ROOT / "docs"
VIEWPORT = {"width": 960, "height": 560}
ADMIN_VIEWPORT = {"width": 1280, "height": 420}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PAGERO_", "DJANGO_", "DEMO_")) and key != "DATABASE_URL"
        }
        env.update(
            DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3", DEMO_ENV_FILE="", DEMO_PORT=str(port)
        )
        manage = [sys.executable, str(ROOT / "example_project" / "manage.py")]
        server = subprocess.Popen(
            [*manage, "demo", "--port", str(port), "--noreload"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:  # bounded readiness poll of the port
                try:
                    if requests.get(f"{base}/", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the demo did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=list(CHROMIUM_ARGS), headless=True
                )
                page = browser.new_context(base_url=base, viewport=VIEWPORT).new_page()
                page.goto("/accounts/login/?next=/")
                page.get_by_label("Username").fill("demo")
                page.get_by_label("Password").fill("demo")
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(f"{base}/")
                page.screenshot(path=DOCS / "demo-connect.png")
                page.goto("/invoices/")
                page.get_by_role("button", name="Approve").click()
                page.wait_for_url(f"{base}/invoices/")
                page.screenshot(path=DOCS / "demo-protected-page.png")
                admin = browser.new_context(base_url=base, viewport=ADMIN_VIEWPORT).new_page()
                admin.goto("/admin/login/?next=/admin/django_pagero_oauth/pagerotoken/")
                admin.get_by_label("Username").fill("admin")
                admin.get_by_label("Password").fill("admin")
                admin.get_by_role("button", name="Log in").click()
                admin.wait_for_url("**/pagerotoken/")
                admin.evaluate("window.scrollTo(0, 0)")
                admin.screenshot(path=DOCS / "demo-admin-tokens.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    for name in ("demo-connect.png", "demo-protected-page.png", "demo-admin-tokens.png"):
        print(DOCS / name, (DOCS / name).stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
