"""`plane serve` in a real headless Chromium (Selenium): look, page, query, diff, relabel.

Needs the Debian `chromium` and `chromium-driver` packages and the `selenium` package; skipped
with the reason when they are absent. Screenshots go to each test's tmp dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane

pytest.importorskip("aiohttp")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from _serve import SCRIPT, build  # noqa: E402

from plane.serve import start  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "ds"
    build(path)
    return path


@pytest.fixture(scope="module")
def server(dataset: Path) -> Iterator[Any]:
    s = start(str(dataset))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def go(browser: Any, server: Any, path: str) -> None:
    browser.get(server.url.rstrip("/") + path)


def wait(browser: Any, cond: Any) -> Any:
    return WebDriverWait(browser, 10).until(cond)


def card_rows(browser: Any) -> list[int]:
    return [int(c.get_attribute("data-row"))
            for c in browser.find_elements(By.CSS_SELECTOR, ".card")]


def test_overview(browser: Any, server: Any, dataset: Path, tmp_path: Path) -> None:
    go(browser, server, "/")
    assert browser.title.startswith("Overview")
    ds = plane.open(str(dataset), read_only=True)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.tensors tr")[1:]
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == list(ds.tensors)
    branches = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.branches a")]
    assert sorted(branches) == ["alice", "bob", "main"]
    log = browser.find_element(By.CSS_SELECTOR, "table.log").text
    assert "first rows" in log
    browser.save_screenshot(str(tmp_path / "overview.png"))


def test_page_the_grid(browser: Any, server: Any, dataset: Path, tmp_path: Path) -> None:
    go(browser, server, "/grid?n=8")
    assert card_rows(browser) == list(range(8))
    browser.find_element(By.ID, "next").click()
    wait(browser, lambda b: card_rows(b) == list(range(8, 16)))
    ids = plane.open(str(dataset), read_only=True).row_ids
    shown = [int(c.get_attribute("data-id"))
             for c in browser.find_elements(By.CSS_SELECTOR, ".card")]
    assert shown == ids[8:16].tolist()
    browser.find_element(By.ID, "prev").click()
    wait(browser, lambda b: card_rows(b) == list(range(8)))
    browser.save_screenshot(str(tmp_path / "grid.png"))


PIXELS_JS = """
const img = arguments[0];
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
return [c.width, c.height, Array.from(g.getImageData(0, 0, c.width, c.height).data)];
"""


def test_thumbnail_pixels_equal_the_decoded_image(browser: Any, server: Any,
                                                  dataset: Path) -> None:
    go(browser, server, "/grid?start=8&n=4")
    img = browser.find_element(By.CSS_SELECTOR, '.card[data-row="9"] img.thumb')
    wait(browser, lambda b: b.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
    w, h, data = browser.execute_script(PIXELS_JS, img)
    got = np.asarray(data, np.int16).reshape(h, w, 4)[:, :, :3]
    want = plane.open(str(dataset), read_only=True)["images"][9].numpy().astype(np.int16)
    assert got.shape == want.shape  # 64x48 is under the thumbnail size: not scaled
    diff = np.abs(got - want)
    assert diff.mean() < 3.0 and np.percentile(diff, 99) < 16, (diff.mean(), diff.max())


def test_run_a_query(browser: Any, server: Any, dataset: Path, tmp_path: Path) -> None:
    sql = "SELECT * WHERE labels = 'cat' AND ROW_ID >= 0 LIMIT 6"
    go(browser, server, "/query")
    box = browser.find_element(By.ID, "sql")
    box.clear()
    box.send_keys(sql)
    browser.find_element(By.ID, "run").click()
    wait(browser, lambda b: b.find_elements(By.ID, "explain"))
    want = plane.open(str(dataset), read_only=True).query(sql).ids.tolist()
    got = [int(c.get_attribute("data-id"))
           for c in browser.find_elements(By.CSS_SELECTOR, ".card")]
    assert got == want and len(got) == 6
    label_xpath = "//dt[.='labels']/following-sibling::dd[1]"
    labels = [e.text for e in browser.find_elements(By.XPATH, label_xpath)]
    assert labels == ["cat"] * 6
    browser.save_screenshot(str(tmp_path / "query.png"))


def test_diff_between_two_branches(browser: Any, server: Any, dataset: Path,
                                   tmp_path: Path) -> None:
    go(browser, server, "/versions")
    browser.find_element(By.ID, "a").send_keys("main")
    browser.find_element(By.ID, "b").send_keys("alice")
    browser.find_element(By.ID, "diff").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "table.diffrows"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.diffrows tr")[1:]
    got = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    ds = plane.open(str(dataset), read_only=True)
    names = ds["labels"].class_names
    want = [["updated", str(rid), names[int(o)], names[int(n)]]
            for rid, o, n in ds.versions.diff("main", "alice").values("labels")]
    assert got == want and len(got) == 2
    assert "no conflicts" in browser.find_element(By.ID, "merge").text
    browser.save_screenshot(str(tmp_path / "diff.png"))


def test_relabel_a_sample_and_see_the_commit(browser: Any, server: Any, dataset: Path,
                                             tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    go(browser, server, "/sample?row=6")
    Select(browser.find_element(By.NAME, "label")).select_by_value("fox")
    browser.find_element(By.NAME, "new_branch").send_keys("relabels")
    browser.find_element(By.ID, "message").send_keys("row 6 is a fox")
    browser.find_element(By.ID, "relabel").click()
    wait(browser, lambda b: b.find_elements(By.ID, "done"))
    first = browser.find_elements(By.CSS_SELECTOR, "table.log tr")[1].text
    assert "row 6 is a fox" in first
    ds = plane.open(str(dataset), read_only=True, version="relabels")
    assert ds.versions.log()[0]["message"] == "row 6 is a fox"
    assert ds.commit_id is not None and ds.commit_id[:12] in first
    assert ds["labels"].class_names[int(ds["labels"][6].numpy())] == "fox"
    browser.save_screenshot(str(tmp_path / "relabelled.png"))


def test_a_script_caption_is_shown_not_run(browser: Any, server: Any) -> None:
    go(browser, server, "/sample?row=3")
    assert browser.title.startswith("Sample 3")  # the caption's script did not set it
    cells = browser.find_elements(By.XPATH, "//td[.='caption']/following-sibling::td[2]")
    assert cells[0].text == SCRIPT


def test_an_error_shows_on_the_page(browser: Any, server: Any) -> None:
    go(browser, server, "/query?sql=SELECT+*+WHERE+nosuch+%3E+1")
    err = browser.find_element(By.ID, "error").text
    assert err.startswith("QueryError") and "nosuch" in err
