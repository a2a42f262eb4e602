"""A finance user in a real browser: headless Chromium against a real `bin/airflow
api-server` with the psops plugin. Logs in through the Airflow login page, opens each
page, checks the figures against the warehouse and saves screenshots to a temporary
folder, or to PSOPS_SCREENSHOT_DIR (`make screenshots` refreshes docs/screenshots)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from psops.settings import SCREENSHOT_DIR
from psops.ui import charts
from tests.ui.conftest import AS_OF, FINANCE_PASSWORD, FINANCE_USER

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = (SCREENSHOT_DIR.path() if SCREENSHOT_DIR.is_set()
               else Path(tempfile.mkdtemp(prefix="psops_screenshots_")))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium); "
                              "apt-get install chromium chromium-driver"),
]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="psops_chromium_")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _screenshot(driver, name: str, max_height: int = 3200) -> Path:
    """The whole page (up to max_height px tall) as a PNG."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), max_height))
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def _log_in(driver, base: str, next_path: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{base}{next_path}")
    _wait(driver, ec.presence_of_element_located((By.NAME, "username")))
    assert "/auth/login" in driver.current_url, driver.current_url
    driver.find_element(By.NAME, "username").send_keys(FINANCE_USER)
    driver.find_element(By.NAME, "password").send_keys(FINANCE_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: d.current_url.startswith(f"{base}{next_path}"))


def test_finance_user_logs_in_and_reads_every_page(browser, api_server, finance_warehouse):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    base = api_server.url
    # Not logged in: the page sends the browser to the Airflow login page, shows no data.
    browser.get(f"{base}/psops/billing")
    _wait(browser, ec.presence_of_element_located((By.NAME, "username")))
    assert "/auth/login" in browser.current_url and "PRJ-" not in browser.page_source

    _log_in(browser, base, "/psops/billing")
    _wait(browser, ec.presence_of_element_located((By.ID, "card-ready")))
    with finance_warehouse.conn() as conn:
        money = conn.execute(
            "SELECT status, currency, sum(amount), count(*) FROM marts.billing_readiness "
            "WHERE as_of = %s AND status IN ('ready', 'blocked') GROUP BY 1, 2", (AS_OF,)
        ).fetchall()
        errors = conn.execute("SELECT count(*) FROM ops.exceptions WHERE status = 'open' AND "
                              "severity = 'error'").fetchone()[0]
    assert f"as of {AS_OF.isoformat()}" in _text(browser, "h1")
    for status, currency, amount, _ in money:
        assert f"{currency} {charts.money(amount)}" in _text(browser, f"#card-{status}"), status
    for status in ("ready", "blocked"):
        count = sum(n for s, _, _, n in money if s == status)
        assert _text(browser, f"#{status}-count") == str(count)
    assert browser.find_elements(By.CSS_SELECTOR, "#reasons tbody tr")
    assert browser.find_element(By.ID, "transform-run-link").get_attribute("href").startswith(
        f"{base}/dags/psops_transform/runs/")
    _screenshot(browser, "billing-readiness.png")

    browser.find_element(By.ID, "tab-exceptions").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "open-errors")))
    assert _text(browser, "#open-errors") == str(errors)
    _screenshot(browser, "exceptions.png")

    browser.find_element(By.ID, "tab-utilization").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "under-count")))
    shown_under = len(browser.find_elements(By.CSS_SELECTOR, "#people tr.under"))
    assert int(_text(browser, "#under-count")) == shown_under > 0
    assert browser.find_elements(By.CSS_SELECTOR, "#region-charts svg rect")
    _screenshot(browser, "utilization.png", max_height=2400)

    # The Data Docs of the last validation open behind the same login.
    browser.get(f"{base}/psops/data-docs/index.html")
    assert "Data Docs" in browser.title or "Expectation" in browser.page_source


def test_finance_is_in_the_airflow_navigation(browser, api_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    base = api_server.url
    if "/auth/login" in (browser.get(f"{base}/psops/billing") or browser.current_url):
        _log_in(browser, base, "/psops/billing")
    browser.get(f"{base}/plugin/psops-finance")
    frame = _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert frame.get_attribute("src").endswith("/psops/billing")
    nav = _wait(browser, ec.presence_of_element_located(
        (By.XPATH, "//nav//*[normalize-space(text())='Finance'] | //a[@href='/plugin/psops-finance']")))
    assert nav
    browser.switch_to.frame(frame)
    _wait(browser, ec.presence_of_element_located((By.ID, "card-ready")))
    browser.switch_to.default_content()
    _screenshot(browser, "finance-in-airflow-ui.png", max_height=1000)
