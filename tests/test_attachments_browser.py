"""Attachments in a real browser (Debian's Chromium, headless, via Python Playwright; launch setup in tests/support/browser.py):
a picture dropped on the conversation shows up as a thumbnail for the other user, a picked file in a one-to-one
conversation as a download link, refusals next to the upload, and guests are told to sign in.

No sleeps: Playwright's expect() and wait_for_function() retry until their timeout.
"""
import base64
import re

import pytest

from tests.support import filesamples as samples
from tests.support.browser import DESKTOP, require_browser
from tests.support.webusers import COOKIE, signed_up

require_browser("tests/test_attachments_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

# Chromium logs refused uploads ("Failed to load resource: ... status of 415"); the page shows them itself.
REFUSAL_LOGGED = r"Failed to load resource: the server responded with a status of 4(15|22|13) "


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url)


@pytest.fixture
def signed_in(browser, open_page, chat_server):  # noqa: F811
    """signed_in(short) -> (ChatPage, name): a registered account's chat page, in a browser context of its own."""
    contexts = []

    def open_signed_in(short):
        user, name = signed_up(chat_server, short)
        context = browser.new_context(viewport=DESKTOP)
        contexts.append(context)
        context.add_cookies([{"name": COOKIE, "value": user.http.cookies.get(COOKIE), "url": chat_server.http_url}])
        chat = open_page(chat_server, context=context)
        chat.wait_online()
        expect(chat.page.locator("#me-name")).to_have_text(name)
        return chat, name

    yield open_signed_in
    for context in contexts:
        context.close()


def drop_files(chat, *files):
    """Drag files over the conversation and drop them, as a user dragging from the desktop does: (name, type, bytes)."""
    handle = chat.page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, type, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type: type }));
            }
            return dt;
        }""",
        [[name, kind, base64.b64encode(data).decode()] for name, kind, data in files],
    )
    chat.page.dispatch_event("#messages", "dragenter", {"dataTransfer": handle})
    expect(chat.page.locator("#drop-overlay")).to_be_visible()
    text = chat.page.locator("#drop-text").text_content()
    chat.page.dispatch_event("#messages", "dragover", {"dataTransfer": handle})
    chat.page.dispatch_event("#messages", "drop", {"dataTransfer": handle})
    expect(chat.page.locator("#drop-overlay")).to_be_hidden()
    return text


def watch_uploads(chat):
    """Record every upload item the page shows, with whether it had a progress bar (they go once the file is posted)."""
    chat.page.evaluate(
        """() => {
            window.uploadsSeen = [];
            new MutationObserver((records) => {
                for (const r of records) for (const n of r.addedNodes)
                    if (n.classList && n.classList.contains("upload"))
                        window.uploadsSeen.push({ name: n.querySelector(".upload-name").textContent,
                                                  progress: n.querySelector("progress.upload-bar") !== null });
            }).observe(document.getElementById("uploads"), { childList: true });
        }"""
    )


def test_dropped_picture_appears_as_a_thumbnail_for_the_other_user(signed_in):
    alice, alice_name = signed_in("alice")
    bob, _ = signed_in("bob")
    watch_uploads(alice)

    assert drop_files(alice, ("sunset.png", "image/png", samples.png(900, 600))) == "Drop to share with everyone"

    thumb = bob.page.locator("#thread li.msg .attachment.picture img.thumb")
    expect(thumb).to_have_count(1)
    bob.page.wait_for_function("() => { const i = document.querySelector('#thread img.thumb'); return i && i.complete && i.naturalWidth === 320; }")
    expect(thumb).to_have_attribute("alt", "sunset.png")
    expect(thumb).to_have_attribute("src", re.compile(r"^/files/\d+/thumb$"))
    message = bob.messages().last
    expect(message.locator(".sender")).to_have_text(alice_name)
    expect(message).to_have_attribute("data-id", re.compile(r"^\d+$"))
    link = message.locator("a.attachment")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("href", re.compile(r"^/files/\d+$"))
    expect(bob.conv("*").locator(".conv-preview")).to_have_text(f"{alice_name}: Picture: sunset.png")

    # The uploader sees it too, as their own; the upload list showed a progress bar and is empty again.
    mine = alice.messages().last
    expect(mine).to_have_class(re.compile(r"\bown\b"))
    expect(mine.locator("img.thumb")).to_have_count(1)
    expect(alice.page.locator("#uploads")).to_be_hidden()
    assert alice.page.evaluate("window.uploadsSeen") == [{"name": "sunset.png", "progress": True}]

    # Clicking the thumbnail opens the picture, full size, in a new tab.
    with bob.context.expect_page() as opened:
        thumb.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert re.search(r"/files/\d+$", tab.url)
    tab.wait_for_function("() => document.images.length === 1 && document.images[0].naturalWidth === 900")
    tab.close()

    # After a reload it comes back from the history, the same.
    bob.page.reload()
    bob.wait_online()
    expect(bob.page.locator("#thread img.thumb")).to_have_count(1)
    bob.page.wait_for_function("() => { const i = document.querySelector('#thread img.thumb'); return i && i.complete && i.naturalWidth === 320; }")


def test_file_picked_in_a_one_to_one_conversation_is_a_download_link_for_that_user_only(signed_in):
    alice, alice_name = signed_in("alice")
    bob, bob_name = signed_in("bob")
    carol, _ = signed_in("carol")
    alice.page.locator(f'#online li[data-user="{bob_name}"] button').click()
    expect(alice.page.locator("#chat-title")).to_have_text(bob_name)
    accept = alice.page.locator("#file-input").get_attribute("accept")
    assert "image/png" in accept and "application/pdf" in accept and "text/plain" in accept
    expect(alice.page.locator("#upload-form")).to_have_attribute("enctype", "multipart/form-data")

    alice.page.locator("#attach").click()  # opens the file chooser; set_input_files stands in for the user's choice
    alice.page.locator("#file-input").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"meeting at noon, room 4\n"}
    )

    expect(bob.conv(alice_name).locator(".badge")).to_have_text("1")
    expect(bob.conv(alice_name).locator(".conv-preview")).to_have_text("File: notes.txt")
    bob.open(alice_name)
    link = bob.messages().last.locator("a.attachment.file")
    expect(link.locator(".file-name")).to_have_text("notes.txt")
    expect(link.locator(".file-size")).to_have_text("24 B")
    expect(link).to_have_attribute("download", "notes.txt")
    expect(link).to_have_attribute("href", re.compile(r"^/files/\d+$"))
    with bob.page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "notes.txt"
    assert open(download.value.path(), "rb").read() == b"meeting at noon, room 4\n"

    expect(alice.messages().last.locator(".file-name")).to_have_text("notes.txt")
    expect(carol.conv(alice_name)).to_have_count(0)
    assert "notes.txt" not in carol.page.content()


def test_a_refused_file_says_why_next_to_its_upload(signed_in, open_page):  # noqa: F811
    open_page.expected_console.append(REFUSAL_LOGGED)
    alice, _ = signed_in("alice")
    drop_files(alice, ("cat.png", "image/png", samples.HTML_PAGE))
    failed = alice.page.locator("#uploads li.upload.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".upload-status")).to_have_text("Not sent: HTML, SVG and XML documents are not accepted")
    expect(alice.messages()).to_have_count(0)
    failed.get_by_role("button", name="Dismiss").click()
    expect(alice.page.locator("#uploads")).to_be_hidden()


def test_too_large_a_file_is_refused_in_the_page_before_it_is_sent(browser, open_page, start_server, sqlite_url):  # noqa: F811
    server = start_server(sqlite_url, max_upload_size=2048)  # the page learns the server's limit
    user, name = signed_up(server, "alice")
    context = browser.new_context(viewport=DESKTOP)
    try:
        context.add_cookies([{"name": COOKIE, "value": user.http.cookies.get(COOKIE), "url": server.http_url}])
        alice = open_page(server, context=context).wait_online()
        sent = []
        alice.page.on("request", lambda r: r.url.endswith("/files") and sent.append(r.url))
        alice.page.locator("#file-input").set_input_files({"name": "big.txt", "mimeType": "text/plain", "buffer": b"x" * 3072})
        failed = alice.page.locator("#uploads li.upload.failed")
        expect(failed.locator(".upload-status")).to_have_text("Too large: 3 KiB; files may be up to 2 KiB.")
        assert sent == []  # the check runs before any request would be made
    finally:
        context.close()


def test_guests_are_asked_to_sign_in_to_share_files(chat_server, open_page):  # noqa: F811
    guest = open_page(chat_server, "visitor")
    attach = guest.page.locator("#attach")
    expect(attach).to_be_disabled()
    expect(attach).to_have_attribute("title", "Sign in to share files")
    assert drop_files(guest, ("cat.png", "image/png", samples.png(40, 30))) == "Sign in to share files"
    expect(guest.page.locator("#notice-text")).to_have_text("Sign in to share files: guests cannot upload.")
    expect(guest.page.locator("#uploads li")).to_have_count(0)


def test_a_picture_pasted_into_the_message_box_is_shared(signed_in):
    alice, _ = signed_in("alice")
    bob, _ = signed_in("bob")
    alice.page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "screenshot.png", { type: "image/png" }));
            const input = document.getElementById("input");
            input.focus();
            input.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
        }""",
        base64.b64encode(samples.png(500, 400)).decode(),
    )
    expect(bob.page.locator("#thread img.thumb")).to_have_attribute("alt", "screenshot.png")
    expect(alice.input).to_have_value("")  # the file was shared, not pasted as text


def test_uploads_refused_for_their_rate_are_sent_again_after_retry_after(browser, open_page, start_server, sqlite_url):  # noqa: F811
    """Three files dropped at once on a server that takes one upload a second: the page waits as the 429 says and
    sends them again; all three are posted and nothing is left failed."""
    open_page.expected_console.append(r"Failed to load resource: the server responded with a status of 429 ")
    server = start_server(sqlite_url, upload_rate=60, upload_burst=1)
    user, _ = signed_up(server, "alice")
    context = browser.new_context(viewport=DESKTOP)
    try:
        context.add_cookies([{"name": COOKIE, "value": user.http.cookies.get(COOKIE), "url": server.http_url}])
        alice = open_page(server, context=context).wait_online()
        refused = []
        alice.page.on("response", lambda r: r.url.endswith("/files") and r.status == 429 and refused.append(r.headers["retry-after"]))
        drop_files(alice, *[(f"note{i}.txt", "text/plain", f"note {i}\n".encode()) for i in range(3)])
        expect(alice.messages().locator(".file-name")).to_have_count(3, timeout=30_000)
        assert sorted(alice.messages().locator(".file-name").all_text_contents()) == ["note0.txt", "note1.txt", "note2.txt"]
        expect(alice.page.locator("#uploads")).to_be_hidden()
        assert refused and set(refused) == {"1"}  # it was refused at first, and waited as told
    finally:
        context.close()


def test_a_file_dropped_in_a_room_is_not_sent(signed_in):
    alice, _ = signed_in("alice")
    alice.page.locator("#rooms-open").click()
    alice.page.locator("#create-room-name").fill("files")
    alice.page.locator("#create-room-submit").click()
    expect(alice.page.locator("#chat-title")).to_have_text("#files")
    # Rooms take no files (docs/protocol.md, Rooms): the page says so instead of uploading to general.
    text = drop_files(alice, ("cat.png", "image/png", samples.png(40, 30)))
    assert text == "Files cannot be shared in rooms yet"
    expect(alice.page.locator("#notice-text")).to_have_text("Files can be shared with everyone or in a one-to-one chat, not in rooms yet.")
    expect(alice.page.locator("#uploads")).to_be_hidden()
    alice.open("*")
    expect(alice.messages()).to_have_count(0)
