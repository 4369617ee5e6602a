"""The dashboard in headless Chromium (Debian's, never a downloaded one): log in, see a device
come online, watch a session's progress bar move and the session land in history, add a user,
disable a device and see it go offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..tools import require_tool
from ..waiting import wait_until
from .conftest import ADMIN_PASSWORD
from .traffic import register, start_progress_session

pytestmark = [pytest.mark.browser, pytest.mark.sipp]

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


@pytest.fixture
def browser(tmp_path):
    chromium = require_tool("chromium", "chromium")
    chromedriver = require_tool("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never looks for (or downloads) anything.
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def wait_on_page(driver, condition, *, what: str, timeout: float = 20.0):
    """Wait for a condition on the page; an element not rendered yet counts as "not yet"."""
    from selenium.common.exceptions import NoSuchElementException

    return wait_until(lambda: condition(driver), what=what, timeout=timeout,
                      ignoring=(NoSuchElementException,))


def text_of(driver, selector: str) -> str:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';",
        selector)


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_an_admin_watches_a_device_and_a_session_live_and_adds_a_user(
        browser, admin_server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(admin_server.url + "/")
    wait_on_page(browser, lambda d: d.current_url.endswith("/login"), what="the login page")
    browser.find_element(By.ID, "login-name").send_keys("root")
    browser.find_element(By.ID, "login-password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_on_page(browser, lambda d: d.find_element(By.ID, "me").text == "root · admin",
                 what="the dashboard")
    wait_on_page(browser, lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"),
                 what="the event stream")

    callee_port = register(admin_server.sip_port, tmp_path, "carol", "carol-pw", "phone")
    # The page re-renders its rows every second: read them in one script, never hold elements.
    row = wait_on_page(browser, lambda d: text_of(d, '#online-table tr[data-key="carol/phone"]'),
                       what="carol/phone online")
    assert "sipp-uas" in row and "udp" in row

    caller, callee = start_progress_session(admin_server.sip_port, tmp_path, "carol", "carol-pw",
                                            "phone", callee_port, pause_ms=700)
    try:
        widths: list[str] = []

        def bar_moved(d) -> bool:
            width = d.execute_script(
                'const f = document.querySelector("#sessions-table .bar .fill");'
                'return f ? f.style.width : "";')
            if width and (not widths or widths[-1] != width):
                widths.append(width)
            return len(widths) >= 2

        wait_on_page(browser, bar_moved, what="the progress bar to move")
        screenshot(browser, tmp_path, "dashboard-session.png")
        wait_on_page(browser, lambda d: "carol/laptop" in text_of(d, "#history-table tbody"),
                     what="the session in history")
        assert caller.wait(timeout=30) == 0 and callee.wait(timeout=30) == 0
    finally:
        for process in (caller, callee):
            if process.poll() is None:
                process.kill()
    assert widths[0] != widths[-1]
    assert text_of(browser, "#sessions-table tbody") == ""

    form = browser.find_element(By.ID, "add-user-form")
    form.find_element(By.NAME, "name").send_keys("newbie")
    form.find_element(By.NAME, "password").send_keys("newbie-pw")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait_on_page(browser, lambda d: text_of(d, '#users-table tr[data-user="newbie"]'),
                 what="the new user listed")
    assert text_of(browser, "#notice") == "added user newbie"

    # Disable carol/phone: its row says so and it leaves the online list.
    browser.execute_script(
        'document.querySelector(\'#devices-table tr[data-key="carol/phone"] button\').click()')
    wait_on_page(browser, lambda d: "disabled" in text_of(d, '#devices-table tr[data-key="carol/phone"]'),
                 what="carol/phone shown disabled")
    assert text_of(browser, "#notice") == "disabled device carol/phone"
    wait_on_page(browser, lambda d: not text_of(d, '#online-table tr[data-key="carol/phone"]'),
                 what="carol/phone offline")
    assert "Enable" in text_of(browser, '#devices-table tr[data-key="carol/phone"] .actions')
    path = screenshot(browser, tmp_path, "dashboard.png")
    assert path.stat().st_size > 10_000

    # At phone width nothing spills sideways: the page is as wide as the screen.
    browser.set_window_size(375, 900)
    # Reading scrollWidth lays the page out anew: it is enough that the resize has landed.
    wait_on_page(browser, lambda d: d.execute_script("return window.innerWidth") <= 375,
                 what="the page at phone width")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= \
        browser.execute_script("return window.innerWidth") + 1
    screenshot(browser, tmp_path, "dashboard-phone.png")
