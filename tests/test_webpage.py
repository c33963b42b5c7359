"""The station's web page in a real headless browser (Chromium from Debian, driven
by Selenium), on a running station (`intercom run`, simulated board, HTTPS with
the certificate it made).

A person logs in (a wrong password first), sees the station idle, sees a
bell press appear live with the visitor's snapshot, opens the door and sees the relay energise and
release, breaks the config and sees the error at its key and line; an
account with view rights gets no door button and no config.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from peers import Station, missing
from test_httpapi import add_account

pytestmark = pytest.mark.peers
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        missing("chromium and chromium-driver are not installed (scripts/setup --test)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1200,1600"):
        options.add_argument(argument)
    options.accept_insecure_certs = True           # the station's own certificate
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, what: str, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(condition, what)


def text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return str(driver.find_element(By.ID, element_id).text)


def log_in(driver: Any, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    for element_id, value in (("name", name), ("password", password)):
        field = driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)
    driver.find_element(By.ID, "login-button").click()


def test_a_person_at_the_page_sees_the_door_station_live_and_works_it(
        tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    port = free_port()
    station = Station(tmp_path, "", ["sip:resident@127.0.0.1:9"], pulse=1.5, log_level="info",
                      extra=f'[http]\nlisten = "127.0.0.1:{port}"\n'
                            '[camera]\nsource = "simulated"\nwidth = 320\nheight = 240\n')
    try:
        for name, rights, password in (("anna", "admin", "front-door-1"),
                                       ("vic", "view", "look-only-2")):
            assert add_account(station.config, name, rights, password).returncode == 0
        browser.get(f"https://127.0.0.1:{port}/")
        log_in(browser, "anna", "not-her-password")
        wait(browser, lambda d: text(d, "login-error") == "Wrong name or password.",
             "the login refused")
        log_in(browser, "anna", "front-door-1")
        wait(browser, lambda d: text(d, "who") == "anna (admin)", "logged in")
        wait(browser, lambda d: text(d, "call") == "idle", "the station idle")
        assert text(browser, "title") == "Front door" and text(browser, "relay") == "released"

        station.press()                                  # a visitor rings
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#events li[data-event=button]"),
             "the bell press in the events, live")
        assert "button=bell" in browser.find_element(
            By.CSS_SELECTOR, "#events li[data-event=button]").text
        snapshot = browser.find_element(By.ID, "snapshot")          # and the visitor's face
        wait(browser, lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", snapshot) == 320,
            "the snapshot shown")
        assert snapshot.get_attribute("data-name").endswith("-bell.jpg")

        browser.find_element(By.ID, "open-door").click()
        wait(browser, lambda d: text(d, "relay") == "energised", "the relay energised")
        assert text(browser, "action-result") == "The door opens."
        opened = station.wait_event(5, event="door", action="opened")
        assert opened["caller"] == "HTTP anna"
        wait(browser, lambda d: text(d, "relay") == "released", "the relay released", 6)

        config = browser.find_element(By.ID, "config")
        original = config.get_property("value")
        assert original == station.config.read_text()
        lines = original.split("\n")
        at = next(i for i, line in enumerate(lines) if line == f"port = {station.port}")
        broken = "\n".join(lines[:at] + ["port = 70000"] + lines[at + 1:])
        browser.execute_script("arguments[0].value = arguments[1];", config, broken)
        browser.find_element(By.ID, "validate").click()
        wait(browser, lambda d: "sip.port" in text(d, "config-result"), "the config error")
        result = browser.find_element(By.ID, "config-result")
        assert result.text.startswith(f"line {at + 1}: sip.port:")
        assert result.get_attribute("data-key") == "sip.port"
        selected = browser.execute_script(
            "const t = arguments[0]; return t.value.slice(t.selectionStart, t.selectionEnd);",
            config)
        assert selected == "port = 70000"
        browser.find_element(By.ID, "save").click()
        wait(browser, lambda d: text(d, "config-result").startswith(f"line {at + 1}:"),
             "the save refused")
        assert station.config.read_text() == original

        browser.find_element(By.ID, "run-doctor").click()
        wait(browser, lambda d: text(d, "doctor").endswith("all checks passed"), "the doctor")

        browser.find_element(By.ID, "logout").click()
        wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed(), "logged out")
        log_in(browser, "vic", "look-only-2")
        wait(browser, lambda d: text(d, "who") == "vic (view)", "vic logged in")
        assert not browser.find_element(By.ID, "open-door").is_enabled()
        assert not browser.find_element(By.ID, "config-section").is_displayed()
        assert not browser.find_element(By.ID, "doctor-section").is_displayed()
        log = station.log_text()
        assert "front-door-1" not in log and "look-only-2" not in log
        assert log.count("http login failed for 'anna' from 127.0.0.1") == 1
    finally:
        station.stop()


def test_a_visitors_message_is_listed_live_and_plays_in_the_page(tmp_path: Path,
                                                                 browser: Any) -> None:
    from selenium.webdriver.common.by import By
    port = free_port()
    station = Station(tmp_path, "", ["sip:resident@127.0.0.1:9"], log_level="info",
                      extra=f'[http]\nlisten = "127.0.0.1:{port}"\n'
                            '[recordings]\nmessages = true\nmessage_seconds = 5\n')
    try:
        assert add_account(station.config, "vic", "view", "look-only-2").returncode == 0
        browser.get(f"https://127.0.0.1:{port}/")
        log_in(browser, "vic", "look-only-2")
        wait(browser, lambda d: text(d, "who") == "vic (view)", "logged in")
        assert not browser.find_element(By.ID, "recordings-section").is_displayed()
        station.press()                         # nobody answers: the visitor speaks
        kept = station.wait_event(20, event="recording", what="message")
        item = wait(browser, lambda d: d.find_elements(
            By.CSS_SELECTOR, f"#recordings li[data-name='{kept['file']}']"),
            "the message in the list, live")[0]
        assert "Message from the visitor at bell" in item.text
        assert not item.find_elements(By.CLASS_NAME, "delete")        # view rights only
        item.find_element(By.TAG_NAME, "button").click()
        player = browser.find_element(By.ID, "player")
        duration = wait(browser, lambda d: d.execute_script(
            "const p = arguments[0]; return p.readyState >= 1 && p.duration", player),
            "the browser decoding the message")
        assert duration == pytest.approx(kept["seconds"], abs=0.2)
        assert player.get_attribute("data-name") == kept["file"]
        # An admin deletes it, once the browser's question is answered.
        assert add_account(station.config, "anna", "admin", "front-door-1").returncode == 0
        browser.find_element(By.ID, "logout").click()
        wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed(), "logged out")
        log_in(browser, "anna", "front-door-1")
        delete = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                         "#recordings li button.delete"),
                      "the delete button for an admin")[0]
        delete.click()
        wait(browser, lambda d: d.switch_to.alert, "the question").accept()
        wait(browser, lambda d: not d.find_element(By.ID, "recordings-section").is_displayed(),
             "the list empty")
        assert not list((tmp_path / "recordings").glob("*.opus"))
    finally:
        station.stop()
