"""End-to-end fixtures: a headless Chromium for the dashboard tests.

The tests use Debian's Chromium (``/usr/bin/chromium``), never a browser that
Playwright would download.  On a machine without it, the ``chromium`` fixture
installs it with apt when running as root, and skips the browser tests otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT = 900  # seconds, for `apt-get update` and for `apt-get install`
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=APT_TIMEOUT, check=False)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The path of Debian's Chromium, installed with apt first if missing and we are root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}; this machine has no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: install it with `sudo apt-get install -y chromium`")
    install = ("install", "-y", "--no-install-recommends", "chromium")
    try:
        done = _apt(*install)
        if done.returncode != 0:  # a fresh machine may have no package lists yet
            _apt("update")
            done = _apt(*install)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"installing Chromium with apt-get took over {exc.timeout:.0f} s")
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"`apt-get install chromium` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Browser]:
    """A headless Chromium driven by Playwright (each test opens its own context)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
