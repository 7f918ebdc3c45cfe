"""The page, let in while the database is down (a guest reloading with its kept resume token): it chats, and a notice
says that its conversation list and the direct messages it missed come once the database is back."""
from tests.support.browser import require_browser
from tests.support.mariadb_instance import needs_mariadb_binaries

require_browser("tests/test_outage_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)


@needs_mariadb_binaries
def test_a_page_let_in_during_an_outage_says_what_it_does_not_have(start_server, throwaway_mariadb, open_page):
    db = throwaway_mariadb
    server = start_server(db.url, db_connect_timeout=1, bots="")
    gus = open_page(server, "gus")
    expect(gus.page.locator("#partial")).to_be_hidden()
    db.stop()
    try:
        gus.page.reload()  # the page joins again under its kept name, with its resume token
        gus.wait_online()
        assert not gus.page_errors and not gus.console_errors, (gus.page_errors, gus.console_errors)
        expect(gus.page.locator("#partial")).to_be_visible()
        expect(gus.page.locator("#partial")).to_contain_text("direct messages sent while you were away")
        # It chats: its own message is shown, and not refused (it is stored when the database is back).
        gus.send("said during the outage")
        expect(gus.messages("said during the outage")).to_have_count(1)
    finally:
        db.start()
    gus.page.reload()  # the database is back: a full welcome, and the notice goes
    gus.wait_online()
    expect(gus.page.locator("#partial")).to_be_hidden()
