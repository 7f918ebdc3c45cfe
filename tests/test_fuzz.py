"""Runs each atheris fuzzing target (tests/fuzz/) for a bounded time in a subprocess; a crash fails the test.

CHAT_FUZZ_SECONDS sets the time per target (default 8). The number of inputs each run tried is printed.
"""
import os
import re
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz")
TARGETS = ["frames", "protocol"]


def fuzz_seconds():
    return max(1, int(float(os.environ.get("CHAT_FUZZ_SECONDS", "8"))))


@pytest.fixture(scope="module", autouse=True)
def atheris_installed():
    try:
        import atheris  # noqa: F401
    except ImportError as e:
        reason = f"atheris is not installed ({e}): pip install -r requirements-dev.txt"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def run_target(target, tmp_path, *args, env=None, timeout=None):
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds to the first directory: not to the seeds
    corpus.mkdir(exist_ok=True)
    command = [
        sys.executable, os.path.join(FUZZ_DIR, f"fuzz_{target}.py"), *args,
        f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=2048", "-timeout=20",
    ]
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, errors="replace",
        env=dict(os.environ, **(env or {})), timeout=timeout or fuzz_seconds() + 120,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(target, tmp_path):
    seconds = fuzz_seconds()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = run_target(target, tmp_path, str(corpus), os.path.join(FUZZ_DIR, "corpus", target), f"-max_total_time={seconds}")
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert result.returncode == 0 and not crashes, (
        f"fuzz_{target} crashed ({crashes}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    runs = re.search(r"Done (\d+) runs in (\d+) second", result.stderr)
    assert runs, result.stderr[-2000:]
    print(f"fuzz_{target}: {runs.group(1)} inputs in {runs.group(2)} s, no crash")
    assert int(runs.group(1)) > 0


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_harness_reports_a_crash(target, tmp_path):
    """The same harness fails on an input that crashes its target (a self-test input, only with the variable set)."""
    crasher = tmp_path / "input"
    crasher.write_bytes(b"self-test crash")
    result = run_target(target, tmp_path, str(crasher), env={"CHAT_FUZZ_SELF_TEST": "1"}, timeout=120)
    assert result.returncode != 0
    assert "self-test crash" in result.stdout + result.stderr  # atheris prints the traceback on stdout
