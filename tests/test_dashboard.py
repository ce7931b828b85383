"""The dashboard in a real headless browser (Debian's chromium, driven by selenium): a tenant
signs in with its key and sees its own memories and versions, forgets one from the page, and
never sees another tenant's. Screenshots are kept in test-artifacts/ (or $LIFELONG_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lifelong.mind import Mind
from lifelong.serve.app import create_app
from lifelong.serve.keys import KeyRing
from lifelong.serve.live import serving

ARTIFACTS = Path(os.environ.get("LIFELONG_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
LISBON = "The Korvath office is in Lisbon."
PORTO = "The Korvath office is in Porto."


def _browser():  # noqa: ANN202 - selenium's driver type
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them when run as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def server(tmp_path: Path, tiny_lm, embedder) -> Iterator[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = tmp_path / "server"
    Mind.init(root, embedder=embedder, language_model=tiny_lm).close()
    run = tmp_path / "results" / "retention" / "20261202T000000Z"  # a results folder as `lifelong bench` writes it
    run.mkdir(parents=True)
    (run / "results.json").write_text("{}")
    plt.plot([0, 1], [1, 0])
    plt.savefig(run / "retention.png")
    plt.close()
    app = create_app(root, language_model=tiny_lm, embedder=embedder, results=tmp_path / "results")
    with serving(app) as url:
        yield url, root


def _key(root: Path, tenant: str) -> str:
    ring = KeyRing(root)
    try:
        return ring.create(tenant)
    finally:
        ring.close()


def _wait_for(driver, text: str, timeout: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while text not in driver.find_element("tag name", "body").text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared; the page shows: {driver.find_element('tag name', 'body').text[:500]}")
        time.sleep(0.2)


def test_a_tenant_sees_its_memories_and_versions_forgets_from_the_page_and_never_sees_another_tenant(server) -> None:
    url, root = server
    acme, globex = _key(root, "acme"), _key(root, "globex")
    with httpx.Client(base_url=url, timeout=600) as http:
        http.post("/v1/memories", headers={"Authorization": f"Bearer {acme}"},
                  json={"texts": [LISBON, "The Korvath bridge opened in 1964."]}).raise_for_status()
        http.post("/v1/memories", headers={"Authorization": f"Bearer {globex}"}, json={"text": PORTO}).raise_for_status()
        job = http.post("/v1/sleep", headers={"Authorization": f"Bearer {acme}"}, json={"epochs": 1}).json()
        while http.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {acme}"}).json()["status"] in ("queued", "running"):
            time.sleep(0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = _browser()
    try:
        driver.get(url + "/")
        driver.find_element("id", "key").send_keys(acme)
        driver.find_element("id", "signin").click()
        _wait_for(driver, LISBON)
        assert "tenant acme" in driver.find_element("id", "status").text and PORTO not in driver.page_source
        driver.save_screenshot(str(ARTIFACTS / "dashboard-memories.png"))
        driver.find_element("css selector", "nav button[data-tab=versions]").click()
        _wait_for(driver, "v1")
        versions = driver.find_element("id", "versiontable").text
        assert "v1" in versions and ("promoted" in versions or "refused" in versions) and "acquisition" in versions
        driver.save_screenshot(str(ARTIFACTS / "dashboard-versions.png"))
        driver.find_element("css selector", "nav button[data-tab=audit]").click()
        _wait_for(driver, "hash chain intact")
        driver.find_element("css selector", "nav button[data-tab=bench]").click()
        _wait_for(driver, "retention")
        deadline = time.monotonic() + 30  # the plot is a real PNG the browser decoded
        while driver.find_element("css selector", "#plots img").get_attribute("naturalWidth") in (None, "0"):
            assert time.monotonic() < deadline, "the benchmark plot never loaded"
            time.sleep(0.2)
        driver.find_element("css selector", "nav button[data-tab=memories]").click()
        _wait_for(driver, LISBON)
        driver.find_element("css selector", "tr[data-id='1'] button.forget").click()
        driver.switch_to.alert.accept()
        deadline = time.monotonic() + 30
        while LISBON in driver.find_element("id", "memorytable").text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert LISBON not in driver.find_element("id", "memorytable").text
        driver.execute_script("sessionStorage.clear()")
        driver.get(url + "/")
        driver.find_element("id", "key").send_keys(globex)
        driver.find_element("id", "signin").click()
        _wait_for(driver, PORTO)
        assert "Korvath bridge" not in driver.page_source
        driver.find_element("css selector", "nav button[data-tab=versions]").click()
        _wait_for(driver, "nothing yet")
    finally:
        driver.quit()
    with httpx.Client(base_url=url) as http:
        left = http.get("/v1/memories", headers={"Authorization": f"Bearer {acme}"}).json()["data"]
    assert [m["text"] for m in left] == ["The Korvath bridge opened in 1964."]
