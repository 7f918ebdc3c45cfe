"""The chat page in headless Chromium (Debian's, via Python Playwright): launch settings, the skip when either is
missing, no_horizontal_overflow(), and ChatPage, one tab of the page with what it reported."""
import glob
import os
import re
import shutil
import sys

import pytest

try:
    from playwright.sync_api import expect, sync_playwright  # noqa: F401  (sync_playwright: for the browser fixture)
except ImportError:  # require_browser() skips, or fails in CI, with the reason
    expect = sync_playwright = None


def playwright_chromium(root=None):
    """The newest Chromium that `python -m playwright install chromium` put in its cache (the Makefile does that only
    where no system Chromium exists), or None."""
    root = root or os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or os.path.expanduser("~/.cache/ms-playwright")
    found = glob.glob(os.path.join(root, "chromium-*", "chrome-linux*", "chrome"))
    return max(found, key=lambda path: int(re.sub(r"\D", "", path.split(os.sep)[-3]) or 0)) if found else None


CHROMIUM = (os.environ.get("CHAT_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or playwright_chromium())
# From shared/STACK-NOTES.md. Never `playwright install` on the project's machines: it downloads a browser and fails
# there (.ci/run installs Debian's chromium); `make test` runs it only where no Chromium is installed at all.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
DESKTOP = {"width": 1200, "height": 760}
PHONE = {"width": 360, "height": 740}


def unavailable():
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM:
        return "chromium is not installed (apt-get install -y chromium; .ci/run does this)"
    if expect is None:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as e:
            return f"python playwright is not installed ({e}); pip install -r requirements-dev.txt"
    return None


def require_browser(module_name):
    """At the top of a browser test module: skip the module with its reason (fail it in CI) when the browser is missing."""
    reason = unavailable()
    if reason:
        print(f"\n{module_name}: {reason}", file=sys.stderr)
        if os.environ.get("CI"):
            pytest.fail(f"browser tests are mandatory in CI: {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    expect.set_options(timeout=TIMEOUT_MS)


def no_horizontal_overflow(page):
    """True when nothing visible sticks out of the viewport sideways."""
    return page.evaluate(
        """() => {
            const w = document.documentElement.clientWidth;
            if (document.documentElement.scrollWidth > w || document.body.scrollWidth > w) return false;
            for (const e of document.querySelectorAll('body *')) {
                const r = e.getBoundingClientRect();
                if (r.width && r.height && (r.right > w + 1 || r.left < -1)) return e.outerHTML.slice(0, 120);
            }
            return true;
        }"""
    )


class ChatPage:
    """One tab of the chat page, with what it reported (dialogs, script errors, console errors)."""

    def __init__(self, context, page, server):
        self.context = context
        self.page = page
        self.server = server
        self.dialogs = []
        self.page_errors = []
        self.console_errors = []
        self.sockets = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.set_default_timeout(TIMEOUT_MS)

    def _on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    @property
    def input(self):
        return self.page.locator("#input")

    @property
    def conn(self):
        return self.page.locator("#conn")

    def join(self, name):
        self.page.locator("#join-name").fill(name)
        self.page.locator("#join-name").press("Enter")
        return self.wait_online()

    def wait_online(self):
        expect(self.conn).to_have_attribute("data-state", "online")
        return self

    def send(self, text):
        self.input.fill(text)
        self.input.press("Enter")

    def conv(self, key):
        """The conversation list entry: "*" for Everyone, else the other user's name."""
        return self.page.locator(f'#conversations li[data-conv="{key}"]')

    def open(self, key):
        self.conv(key).locator("button").click()
        expect(self.conv(key)).to_have_class(re.compile(r"\bactive\b"))

    def messages(self, text=None):
        """Message items of the open conversation (optionally those containing `text`)."""
        loc = self.page.locator("#thread li.msg")
        return loc if text is None else loc.filter(has_text=text)

    def texts(self):
        return self.page.locator("#thread li.msg .text").evaluate_all("els => els.map(e => e.textContent)")

    def problems(self, expected_console=()):
        console = [m for m in self.console_errors if not any(re.search(p, m) for p in expected_console)]
        return {"dialogs": self.dialogs, "page errors": self.page_errors, "console errors": console}
