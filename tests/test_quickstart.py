"""The README's quick start holds: its two commands are the Makefile's and the ones CI runs, `make run` works from a
fresh copy in a fresh virtual environment, and every relative link in the README and docs/ leads to a file and
heading that exist."""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.servers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def section(markdown, heading):
    """The text under `## heading`, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def code_blocks(markdown):
    return re.findall(r"^```[a-z]*\n(.*?)^```", markdown, re.M | re.S)


def commands(script):
    """The command lines of a shell script: no comments, no blank lines."""
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_readme_quick_start_is_make_run_and_make_test():
    quick = section(read(README), "Quick start")
    run_at, test_at = quick.index("Run the server"), quick.index("Run the tests")
    assert "make run" in code_blocks(quick[run_at:test_at])[0].splitlines()
    assert "make test" in code_blocks(quick[test_at:])[0].splitlines()


def test_ci_runs_the_readme_test_command_in_its_own_virtual_environment():
    ci = commands(read(os.path.join(ROOT, ".ci", "run")))
    assert "make test" in ci
    assert any("python3 -m venv --system-site-packages .venv" in line for line in ci)
    # Nothing is installed into the system interpreter: pip runs only through the Makefile, inside .venv.
    assert not [line for line in ci if "pip install" in line or "pytest" in line.split()]


def make_env(**extra):
    """The environment for a `make` of our own: none of the MAKEFLAGS and MAKELEVEL of a `make test` running this suite
    (a nested make prints "Entering directory" lines and takes on the outer one's flags)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return {**env, **extra}


def make_steps(target, tmp_path):
    """What `make -n -B TARGET` would run (every step, as in a fresh clone), with .venv in `tmp_path`."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed (apt-get install make)")
    venv = str(tmp_path / ".venv")
    defaults = ["PYTHON=python3", "VENV_FLAGS=", "ARGS=", "PYTEST_ARGS="]  # whatever the outer make or shell set
    out = subprocess.run(["make", "-n", "-B", target, f"VENV={venv}", *defaults], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=True, env=make_env()).stdout
    return [line.replace(venv, ".venv") for line in out.splitlines() if line.strip()]


def test_make_run_makes_the_venv_installs_the_requirements_and_starts_the_server(tmp_path):
    steps = make_steps("run", tmp_path)
    assert steps[0] == "python3 -m venv  .venv"
    assert any(s.startswith(".venv/bin/python -m pip install") and s.endswith("-r requirements.txt") for s in steps)
    assert steps[-1].strip() == ".venv/bin/python run_server.py"


def test_make_test_installs_the_dev_requirements_and_wscat_then_runs_pytest(tmp_path):
    steps = make_steps("test", tmp_path)
    assert steps[0] == "python3 -m venv  .venv"
    pip = [i for i, s in enumerate(steps) if s.startswith(".venv/bin/python -m pip install")]
    assert steps[pip[0]].endswith("-r requirements-dev.txt")
    npm = [i for i, s in enumerate(steps) if s.startswith("npm install")]
    assert len(npm) == 1
    assert steps[-1].strip() == ".venv/bin/python -m pytest"
    assert pip[0] < npm[0] < len(steps) - 1


def test_make_run_works_from_a_fresh_copy_in_a_fresh_virtual_environment(tmp_path):
    """The quick start as a new user runs it: a copy of the tracked files, no .venv, `make run`, the page answers."""
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    copy = tmp_path / "chat"
    for name in tracked.decode().split("\0"):
        if name and os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(copy / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), copy / name)
    port = free_port()
    log = open(tmp_path / "make-run.log", "w+b")
    proc = subprocess.Popen(["make", "run", f"ARGS=--port {port}", f"PYTHON={sys.executable}"], cwd=copy,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={k: v for k, v in make_env().items() if not k.startswith(("CHAT_", "VIRTUAL_ENV"))})
    try:
        deadline = time.monotonic() + 240  # pip installs requirements.txt into the new .venv first
        while True:
            log.seek(0)
            output = log.read().decode("utf-8", "replace")
            if "listening on" in output:
                break
            assert proc.poll() is None, f"make run exited {proc.returncode}:\n{output[-3000:]}"
            assert time.monotonic() < deadline, f"make run did not start the server:\n{output[-3000:]}"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200
        assert os.path.exists(copy / ".venv" / "bin" / "python")
        assert os.path.exists(copy / "chat.db")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


# ---- links -----------------------------------------------------------------------------------------------------

DOCS = [README, os.path.join(ROOT, "bench", "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def without_code(markdown):
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", markdown)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    text = re.sub(r"^```.*?^```", "", read(path), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        s = slug(heading)
        n = seen.get(s, 0)
        seen[s] = n + 1
        found.add(s if n == 0 else f"{s}-{n}")
    return found


def links(path):
    return re.findall(r"\]\(([^)\s]+)\)", without_code(read(path)))


def test_the_slug_rule_matches_github():
    assert slug("Several processes (scale-out over Redis)") == "several-processes-scale-out-over-redis"
    assert slug("(a) `run_server.py --workers N`") == "a-run_serverpy---workers-n"
    assert slug("MySQL / MariaDB in production") == "mysql--mariadb-in-production"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path):
    broken = []
    for link in links(path):
        if re.match(r"^[a-z]+:", link):
            continue  # http:, https:, mailto:
        target, _, anchor = link.partition("#")
        target_path = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        if not os.path.exists(target_path):
            broken.append(f"{link}: no such file")
        elif anchor and target_path.endswith(".md") and anchor not in anchors(target_path):
            broken.append(f"{link}: no such heading")
    assert broken == []


def test_the_readme_is_a_short_front_door():
    readme = read(README)
    assert len(readme.splitlines()) <= 150
    for heading in ("Quick start", "Chatting from a terminal", "Where to read on"):
        assert f"- [{heading}](#{slug(heading)})" in readme  # the table of contents
    assert "![" in readme and "(docs/screenshot.png)" in readme
    # Every page of docs/ is reachable from the README.
    linked = {os.path.normpath(os.path.join(ROOT, link.partition("#")[0])) for link in links(README)}
    pages = {p for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
    assert sorted(os.path.relpath(p, ROOT) for p in pages - linked) == []


# ---- the browser ----------------------------------------------------------------------------------------------

def fake_playwright_cache(root, *revisions):
    for revision in revisions:
        chrome = root / f"chromium-{revision}" / "chrome-linux64" / "chrome"
        chrome.parent.mkdir(parents=True)
        chrome.write_text("")
    return root


def test_the_tests_find_playwrights_own_chromium_when_no_system_one_is_there(tmp_path):
    from tests.support.browser import playwright_chromium

    assert playwright_chromium(str(tmp_path)) is None
    fake_playwright_cache(tmp_path, 998, 1255)
    assert playwright_chromium(str(tmp_path)) == str(tmp_path / "chromium-1255" / "chrome-linux64" / "chrome")


def test_make_fetches_playwrights_chromium_only_where_there_is_none(tmp_path):
    """`make browser` with no chromium on PATH: nothing when Playwright's cache has one, else `playwright install`
    (here a stand-in python that only says what it was asked)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed (apt-get install make)")
    bin_dir = tmp_path / "bin"  # a PATH with ls and echo but no chromium
    bin_dir.mkdir()
    for tool in ("ls", "echo"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\necho stand-in python \"$@\"\n")
    (venv / "bin" / "python").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "cache")}

    def make_browser():
        done = subprocess.run([shutil.which("make"), "-s", "browser", f"VENV={venv}", "SHELL=/bin/sh"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "stand-in python -m playwright install chromium" in make_browser()
    fake_playwright_cache(tmp_path / "cache", 1255)
    assert make_browser() == ""
    env["CHAT_TEST_CHROMIUM"] = "/opt/some/chrome"
    shutil.rmtree(tmp_path / "cache")
    assert make_browser() == ""
