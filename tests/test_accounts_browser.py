"""Accounts in a real browser (Debian's Chromium, headless, via Python Playwright; launch setup in tests/support/browser.py):
register, sign in, sign out, and what the chat page does when a name is registered or a session ends.

The server runs with the real per-connection rate limits (tests/support/servers.py lifts them for other tests), so these also show the
page itself stays within them. No sleeps: Playwright's expect() retries until its timeout. How user text is shown
(never as HTML) is tested for every page in test_chat_page_browser.py::test_user_text_is_shown_as_text_and_never_run.
"""
import re

import pytest

from chat.config import Settings
from tests.support.browser import require_browser
from tests.support.servers import ServerProcess
from tests.support.webusers import PASSWORD, WebUser, get_token, signed_up, token_socket, unique

require_browser("tests/test_accounts_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

_defaults = Settings()
REAL_LIMITS = {"rate_limit": _defaults.rate_limit, "rate_burst": _defaults.rate_burst}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (every test uses names of its own)."""
    directory = tmp_path_factory.mktemp("auth-browser")
    server = ServerProcess(f"sqlite:///{directory / 'chat.db'}", directory / "server.log", **REAL_LIMITS).start()
    yield server
    server.stop()


def fill_form(page, **fields):
    for field, value in fields.items():
        page.locator(f"#{field}").fill(value)


def expect_signed_in_chat(chat, name):
    expect(chat.conn).to_have_attribute("data-state", "online")
    expect(chat.page.locator("#me-name")).to_have_text(name)
    expect(chat.page.locator("#me-sub")).to_have_text("Signed in")
    expect(chat.page.locator("#join-screen")).to_be_hidden()
    expect(chat.page.locator("#logout")).to_be_visible()


def expect_join_screen(chat):
    expect(chat.page.locator("#join-screen")).to_be_visible()
    expect(chat.page.locator("#login-link")).to_be_visible()
    expect(chat.page.locator("#register-link")).to_be_visible()


def test_register_then_chat_as_that_user(server, open_page):
    name = unique("reg")
    chat = open_page(server)
    expect_join_screen(chat)
    chat.page.locator("#register-link").click()
    fill_form(chat.page, username=name.upper(), password=PASSWORD, confirm=PASSWORD)
    chat.page.locator("#register-submit").click()
    expect(chat.page).to_have_url(server.http_url + "/")
    expect_signed_in_chat(chat, name)  # no name picker: the session cookie went with the handshake
    assert re.search(rf"/ws/{name}$", chat.sockets[-1])

    listener = token_socket(server, name, get_token(server, name))  # the same user from a terminal
    chat.send("hello from my account")
    event = listener.recv_type("message")
    assert (event["user"], event["msg"]) == (name, "hello from my account")
    listener.close()


# A form shown again with its errors comes with the status that says why (400, 401, 409); Chromium logs those.
FORM_STATUS_LOGGED = r"Failed to load resource: the server responded with a status of 4(00|01|09) "


def test_registration_errors_show_next_to_the_fields(server, open_page):
    open_page.expected_console.append(FORM_STATUS_LOGGED)
    _, taken = signed_up(server, "taken")
    chat = open_page(server, path="/register")
    fill_form(chat.page, username=taken, password=PASSWORD, confirm=PASSWORD + "!")
    chat.page.locator("#register-submit").click()
    expect(chat.page.locator("#confirm-error")).to_have_text("The two passwords differ.")
    expect(chat.page.locator("#username-error")).to_be_hidden()
    expect(chat.page.locator("#username")).to_have_value(taken)  # kept; the passwords are not sent back
    expect(chat.page.locator("#password")).to_have_value("")
    fill_form(chat.page, password=PASSWORD, confirm=PASSWORD)
    chat.page.locator("#register-submit").click()
    expect(chat.page.locator("#username-error")).to_have_text("That name is taken.")
    expect(chat.page.locator("#confirm-error")).to_be_hidden()


def test_login_and_logout_close_the_sessions_tabs(server, open_page):
    open_page.expected_console.append(FORM_STATUS_LOGGED)
    _, name = signed_up(server, "login")
    first = open_page(server, path="/login")
    fill_form(first.page, username=name, password=PASSWORD + "x")
    first.page.locator("#login-submit").click()
    expect(first.page.locator("#password-error")).to_have_text("Wrong user name or password.")
    fill_form(first.page, password=PASSWORD)
    first.page.locator("#login-submit").click()
    expect_signed_in_chat(first, name)
    second = open_page(server, context=first.context)  # another tab of the same browser: signed in too
    expect_signed_in_chat(second, name)

    first.page.locator("#logout").click()
    expect_join_screen(first)
    # The other tab's socket was closed by the server (4001 "signed out"), and it went back to the signed-out page.
    expect_join_screen(second)
    expect(second.page.locator("#join-name")).to_be_visible()
    assert 'data-user=""' in second.page.content()


def test_guest_page_refuses_a_registered_name(server, open_page):
    _, name = signed_up(server, "owned")
    chat = open_page(server)
    chat.page.locator("#join-name").fill(name)
    chat.page.locator("#join-name").press("Enter")
    expect(chat.page.locator("#join-error")).to_contain_text("is a registered name. Sign in to use it")
    expect(chat.page.locator("#join-screen")).to_be_visible()
    assert chat.sockets == []  # it never tried


def test_guest_is_sent_back_to_the_join_screen_when_its_name_is_registered(server, open_page):
    name = unique("guest")
    chat = open_page(server, name)  # a guest, chatting
    assert WebUser(server).register(name).status_code == 302  # someone registers the name
    expect(chat.page.locator("#join-error")).to_contain_text("is a registered name")
    expect(chat.page.locator("#join-screen")).to_be_visible()
    expect(chat.page.locator("#join-name")).to_have_value("")


def test_members_only_server_offers_sign_in_and_connects_members(start_server, sqlite_url, open_page):
    server = start_server(sqlite_url, allow_guests=False, **REAL_LIMITS)
    visitor = open_page(server)
    expect(visitor.page.locator("#no-guests")).to_be_visible()
    expect(visitor.page.locator("#join-name")).to_have_count(0)
    visitor.page.locator("#login-link").click()
    expect(visitor.page.locator("#login-form")).to_be_visible()
    expect(visitor.page.get_by_text("Chat as a guest")).to_have_count(0)
    visitor.page.locator("#register-link").click()
    name = unique("member")
    fill_form(visitor.page, username=name, password=PASSWORD, confirm=PASSWORD)
    visitor.page.locator("#register-submit").click()
    expect_signed_in_chat(visitor, name)
