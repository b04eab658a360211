"""nota serve: the archive in a real Datasette, driven by a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import copy_database, headless_chrome, serving
from nota.archive.datasette_metadata import STORED_QUERIES
from nota.archive.database import open_archive, open_readonly

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def server(_reduced, tmp_path):
    db_path, _ = _reduced
    path = copy_database(db_path, tmp_path / "nota.db")
    for base, port in serving(path, tmp_path, "--time-limit", "500"):
        yield base, path, port


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sql(base, query):
    return get(base + "/nota.json?" + urllib.parse.urlencode({"sql": query}))


def test_serve_is_read_only_and_on_loopback(server):
    base, path, port = server
    request = urllib.request.Request(base + "/nota/files/-/insert", data=b'{"row": {"name": "x"}}', method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    status, body = sql(base, "ATTACH DATABASE '/tmp/other.db' AS other")
    assert status == 400 and b"SELECT" in body
    status, body = sql(base, "DELETE FROM files")
    assert status == 400
    status, body = sql(base, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    assert status != 200 and b"too long" in body
    # Listening on 127.0.0.1 only: the kernel's socket table says so.
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    listening.append(local.split(":")[0])
    assert listening == ["0100007F"], listening
    assert open_archive(path).conn.execute("SELECT count(*) FROM files").fetchone()[0] == 134


def test_new_rows_show_on_reload(server):
    base, path, _ = server
    count = lambda: json.loads(get(base + "/nota.json?sql=select+count(*)+as+n+from+activities&_shape=array")[1])[0]["n"]
    before = count()
    db = open_archive(path)  # a writer beside the running server, as nota reduce would be
    db.conn.execute("INSERT INTO activities (step, started_at, status) VALUES ('test', 'now', 'ok')")
    db.conn.close()
    assert count() == before + 1


def test_every_stored_query_runs(server):
    base, _, _ = server
    for name in STORED_QUERIES:
        status, body = get(f"{base}/nota/{name}.json?_shape=objects")
        payload = json.loads(body)
        assert status == 200 and payload.get("ok", True), (name, payload)
    rows = json.loads(get(f"{base}/nota/odd_shapes.json?_shape=array")[1])
    assert [r["filename"] for r in rows] == ["ALrd120063.fits"]
    log = json.loads(get(f"{base}/nota/night_log.json?_shape=array&night=2008-04-12")[1])
    assert len(log) == 134 and any("rotated" in (r["notes"] or "") for r in log)


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                    reason="Debian's chromium and chromium-driver are not installed")
def test_browse_in_a_real_browser(server, tmp_path):
    from selenium.webdriver.common.by import By

    base, _, _ = server
    driver = headless_chrome(tmp_path / "chrome")
    try:
        driver.get(base + "/nota/frames")
        assert "frames" in driver.title
        thumb = driver.find_element(By.CSS_SELECTOR, "img.nota-thumb")
        driver.execute_script("arguments[0].scrollIntoView();", thumb)
        wait_for(lambda: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb))
        assert driver.execute_script("return arguments[0].naturalWidth", thumb) > 0
        # Facet by filter: the R frames only.
        driver.find_element(By.CSS_SELECTOR, "a[href*='filter=R']").click()
        assert "filter=R" in driver.current_url
        cells = driver.find_elements(By.CSS_SELECTOR, "td.col-filter")
        assert cells and {c.text for c in cells} == {"R"}
        # A science product, its lineage, and one raw bias frame behind it.
        driver.get(base + "/nota/products?kind=reduced&filter=R")
        driver.find_element(By.CSS_SELECTOR, "td.col-product_id a").click()
        assert "/nota/products/" in driver.current_url
        wait_for(lambda: driver.execute_script("var i = document.getElementById('nota-view'); return i && i.complete && i.naturalWidth"))
        driver.find_element(By.LINK_TEXT, "Lineage of this product").click()
        assert "Lineage of product" in driver.page_source
        bias = next(a for a in driver.find_elements(By.CSS_SELECTOR, "a.nota-raw") if a.text.startswith("ALrd12000"))
        name = bias.text
        bias.click()
        assert "/nota/files/" in driver.current_url and name in driver.page_source
        # Every stored query opens without an error.
        for query in STORED_QUERIES:
            driver.get(f"{base}/nota/{query}")
            assert "error" not in driver.find_element(By.TAG_NAME, "body").text.lower()[:200], query
            assert driver.find_elements(By.CSS_SELECTOR, "table.rows-and-columns"), query
        driver.get(base + "/nota/frames?kind=sky_flat")
        driver.save_screenshot(str(tmp_path / "frames.png"))
        assert (tmp_path / "frames.png").stat().st_size > 10_000
    finally:
        driver.quit()


def wait_for(condition, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting in the browser")


def test_every_table_and_view_page_opens(server):
    base, path, _ = server
    db = open_archive(path)
    names = db.table_names() + db.view_names()
    for name in names:
        status, _ = get(f"{base}/nota/{name}?_size=5")
        assert status == 200, name


def test_the_last_check_shows(server):
    """`nota check` beside the server: its result shows on reload, linked from the menu."""
    base, path, _ = server
    status, page = get(base + "/-/nota/check")
    assert status == 200 and b"Never checked" in page
    checked = subprocess.run([sys.executable, "-m", "nota.cli", "--db", str(path), "check"],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status, page = get(base + "/-/nota/check")
    assert status == 200 and b"all is well" in page and checked.stdout.strip().encode() in page
    assert b'href="/-/nota/check"' in get(base + "/nota")[1]
