"""The search box on the chat page, in headless Chromium: results newest first with user text as text, paging with
"Older results", a refusal shown under the box, and a /search typed in the composer shown there too.

Against the real server (a subprocess on a free port, SQLite store). Nothing sleeps to synchronise: Playwright's
expect() polls an observable condition until its timeout."""
import uuid

import pytest

from tests.support.browser import require_browser

require_browser("tests/test_search_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

XSS = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url, bots="")


def acked(client, payload):
    ref = uuid.uuid4().hex[:8]
    client.send({**payload, "ref": ref})
    while True:
        event = client.recv()
        if event.get("ref") == ref:
            assert event["type"] == "ack", event
            return event


def test_the_search_box_lists_results_as_text_pages_on_and_shows_refusals(chat_server, open_page, clients):
    alice = open_page(chat_server, "alice")
    bob = clients(chat_server, "bob")
    w = "w" + uuid.uuid4().hex[:10]
    sent = [acked(bob, {"type": "message", "msg": f"{w} number {i}"})["id"] for i in range(22)]
    direct = acked(bob, {"type": "direct", "to": "alice", "msg": f"{w} {XSS}"})["id"]
    acked(bob, {"type": "message", "msg": "nothing to find"})

    page = alice.page
    page.locator("#search-input").fill(w)
    page.locator("#search-input").press("Enter")
    results = page.locator("#search-results li")
    expect(results).to_have_count(20)
    expect(results.first.locator(".search-text")).to_have_text(f"{w} {XSS}")  # the newest, as text
    expect(results.first.locator(".search-where")).to_have_text("bob · from bob")
    assert results.first.get_attribute("data-id") == str(direct)
    assert page.locator("#search-results img").count() == 0 and page.evaluate("window.__pwned") is None
    page.locator("#search-more").click()
    expect(results).to_have_count(23)
    expect(page.locator("#search-more")).to_be_hidden()
    assert [int(results.nth(i).get_attribute("data-id")) for i in range(23)] == [direct] + sorted(sent, reverse=True)

    page.locator("#search-input").fill("!!! ???")
    page.locator("#search-input").press("Enter")
    expect(page.locator("#search-status")).to_have_text('"q" holds no word to search for (letters or digits)')
    expect(results).to_have_count(0)

    alice.send(f"/search {w} number 7")
    expect(results).to_have_count(1)
    expect(results.first.locator(".search-text")).to_have_text(f"{w} number 7")
    expect(page.locator("#search-input")).to_have_value(f"{w} number 7")
