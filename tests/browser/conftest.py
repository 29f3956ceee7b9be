"""Browser tests: headless Chromium, driven by Playwright's sync API, against pytest-django's
live server (a real HTTP server in a thread, on the test database).

Chromium is Debian's /usr/bin/chromium (.ci/run installs it). Without it the tests skip on a
laptop, and fail when CI is set, so CI cannot pass by skipping them. Run everything else with
`make test PYTEST_ARGS='-m "not browser"'`.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser(django_db_setup, django_db_blocker):
    """One Chromium per module.

    Between its calls, Playwright's sync API marks an asyncio loop as running in this thread.
    Two things follow for Django on the test's thread while the browser is open: the ORM's guard
    would take the test for async code (lifted: the ORM calls here are synchronous), and
    connections, being asgiref locals, become context-local — a second connection, closed before
    the browser, so that the test database can be dropped."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                yield chromium
            finally:
                chromium.close()
                with django_db_blocker.unblock():
                    connections.close_all()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) at 1366×768, with downloads allowed."""
    context = browser.new_context(
        viewport=VIEWPORT, accept_downloads=True, base_url=live_server.url
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()
