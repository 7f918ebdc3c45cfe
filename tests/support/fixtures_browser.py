"""Pytest plugin (registered in tests/conftest.py): a headless Chromium per module, and chat pages opened in it."""
import pytest

from tests.support.browser import CHROMIUM, DESKTOP, LAUNCH_ARGS, ChatPage, sync_playwright


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """open_page(server, name=None, path="/", viewport=DESKTOP, context=None) -> a joined ChatPage."""
    contexts = []
    pages = []

    def open_(server, name=None, path="/", viewport=None, context=None):
        if context is None:
            context = browser.new_context(viewport=viewport or DESKTOP)
            contexts.append(context)
        chat = ChatPage(context, context.new_page(), server)
        pages.append(chat)
        chat.page.goto(server.http_url + path)
        if name:
            chat.join(name)
        return chat

    open_.pages = pages
    open_.expected_console = []
    yield open_
    try:
        for chat in pages:
            problems = chat.problems(open_.expected_console)
            assert not any(problems.values()), f"the page reported problems: {problems}"
    finally:
        for context in contexts:
            context.close()
