"""Headless Chromium for the page tests (Debian's chromium + chromedriver, installed by `make install`), through
selenium: whether it is there, a driver at a given window size, and what a page logged and requested. Shared by
test_browser.py (the answer browser in a report) and test_site.py (the static site)."""
from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def chromium_missing() -> str | None:
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        return f"{CHROMIUM} or {CHROMEDRIVER} absent: `make install` installs Debian's chromium and chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")


def start_chromium(profile: Path, width: int, height: int):
    """A headless Chromium with no background traffic of its own, logging the console, at width x height."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    browser.set_window_size(width, height)
    return browser


def console_errors(driver) -> list[dict]:
    """The console's errors since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested(driver) -> list[str]:
    """Every address the page loaded or fetched (navigation and resource timing entries)."""
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                 ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
