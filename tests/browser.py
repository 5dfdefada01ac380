"""Headless Chromium for browser tests, driven by Selenium with Debian's chromium and
chromedriver (no browser download). Where they are missing the test is skipped, except
under CBTFLOW_REQUIRE_BROWSER=1 (set by .ci/run, which installs them): there a missing
browser is a failure."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A closed network: without these flags Chromium keeps trying Google's hosts at start.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@contextlib.contextmanager
def chrome(profile_dir):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        if os.environ.get("CBTFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {missing} not installed (apt-get install chromium chromium-driver)")
        pytest.skip(f"{missing} not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The pages render on hashchange, after the click that changed the hash: an element a
    # click brings is waited for (up to 10 s), not looked up in the same instant.
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()
