"""The night report and the lineage page in a real `nota serve`, opened by a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request

import pytest

from conftest import copy_database, headless_chrome, serving
from nota.archive.database import open_readonly

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NIGHT = "2008-04-12"
ALL_IMAGES_LOADED = """
var images = Array.from(document.querySelectorAll('img'));
images.forEach(function (i) { i.loading = 'eager'; });
return images.length > 0 && images.every(function (i) { return i.complete && i.naturalWidth > 0; });
"""
BROKEN_IMAGES = "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
DATASETTE_STYLE = """
var sheets = Array.from(document.styleSheets).filter(s => s.href && s.href.indexOf('/-/static/app.css') >= 0);
return sheets.length === 1 && sheets[0].cssRules.length > 50;
"""


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting in the browser")


@pytest.fixture
def served(_reduced, tmp_path):
    db_path, _ = _reduced
    path = copy_database(db_path, tmp_path / "nota.db")
    for base, _ in serving(path, tmp_path):
        yield base, path


def test_the_served_report_and_an_unknown_night(served):
    base, _ = served
    status, body = get(f"{base}/-/nota/report/{NIGHT}")
    assert status == 200
    page = body.decode()
    assert "/-/static/app.css" in page and 'class="nota-page nota-report-page"' in page
    assert "data:image/png" not in page and "/-/nota/preview/file/" in page  # served pictures, not embedded
    assert 'href="/-/nota/reports">Night reports</a>' in page  # in Datasette's menu, on every page
    status, body = get(f"{base}/-/nota/report/1999-01-01")
    assert status == 404 and b"1999-01-01" in body
    status, body = get(f"{base}/-/nota/reports")
    assert status == 200 and f'href="/-/nota/report/{NIGHT}"'.encode() in body


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                    reason="Debian's chromium and chromium-driver are not installed")
def test_report_and_lineage_in_a_real_browser(served, tmp_path):
    from selenium.webdriver.common.by import By

    base, path = served
    with open_readonly(path) as archive:
        products = archive.run("SELECT count(*) FROM products WHERE night = ? AND current = 1", (NIGHT,))[1][0][0]
        frames = archive.run("SELECT count(*) FROM frames WHERE night = ?", (NIGHT,))[1][0][0]
        stack = archive.run("SELECT product_id FROM products WHERE kind = 'stack' AND current = 1"
                            " ORDER BY product_id LIMIT 1")[1][0][0]
    driver = headless_chrome(tmp_path / "chrome")
    try:
        # A night in the frames table links to its report.
        driver.get(base + "/nota/frames?_size=5")
        driver.find_element(By.CSS_SELECTOR, f"td.col-night a[href='/-/nota/report/{NIGHT}']").click()
        assert driver.current_url.endswith(f"/-/nota/report/{NIGHT}")
        assert driver.title == f"Night of {NIGHT}"
        assert driver.execute_script(DATASETTE_STYLE)
        assert driver.find_elements(By.CSS_SELECTOR, "header nav p.crumbs a")  # Datasette's own header
        wait_for(lambda: driver.execute_script(ALL_IMAGES_LOADED), seconds=60)
        assert not driver.execute_script(BROKEN_IMAGES)
        assert len(driver.find_elements(By.CSS_SELECTOR, "table.logbook tr[id^='frame-'] img")) == frames
        graph = driver.find_element(By.CSS_SELECTOR, "div.graph svg")
        assert len(graph.find_elements(By.CSS_SELECTOR, "g[data-product-id]")) == products
        driver.save_screenshot(str(tmp_path / "report.png"))
        # The lineage page of a stack: Datasette's look, a thumbnail at every node, graph and tree.
        driver.get(f"{base}/-/nota/lineage/{stack}")
        assert "Lineage of product" in driver.title
        assert driver.execute_script(DATASETTE_STYLE)
        wait_for(lambda: driver.execute_script(ALL_IMAGES_LOADED), seconds=60)
        assert not driver.execute_script(BROKEN_IMAGES)
        svg = driver.find_element(By.CSS_SELECTOR, "div.graph svg")
        nodes = svg.find_elements(By.CSS_SELECTOR, "g.node")
        assert nodes and len(svg.find_elements(By.CSS_SELECTOR, "image")) == len(nodes)
        tree_items = driver.find_elements(By.CSS_SELECTOR, "ul.nota-lineage li")
        assert tree_items and all(li.find_elements(By.CSS_SELECTOR, "img.thumb") for li in tree_items)
        driver.save_screenshot(str(tmp_path / "lineage.png"))
        # A box in the graph leads on to that product's own lineage.
        master = svg.find_element(By.CSS_SELECTOR, "g.master_flat")
        driver.execute_script("arguments[0].closest('a').dispatchEvent(new MouseEvent('click', {bubbles: true}))",
                              master)
        wait_for(lambda: "/-/nota/lineage/" in driver.current_url and f"/{stack}" not in driver.current_url)
    finally:
        driver.quit()
