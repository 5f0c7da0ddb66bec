from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crts.data.sampling import choose_steps
from cube import open_cube
from cube.explore.model import colouring, map_model
from cube.explore.page import write_page

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,900",
)
"""How the tests start Chromium: headless, without a sandbox (containers), and without any request of its own."""


@pytest.fixture(scope="module")
def page(tiny_cube: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "map"
    write_page(tiny_cube, out, pick=functools.partial(choose_steps, n_input_samples=2))
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM} with {DRIVER}: `make test` installs Debian's where it is root")
    pytest.importorskip("selenium", reason="no selenium (the dev extra installs it): the browser test is skipped")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested(driver: object) -> list[tuple[str, str]]:
    """(document, URL) of every request since the last call (Chrome DevTools' performance log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append((message["params"].get("documentURL", ""), message["params"]["request"]["url"]))
    return urls


def test_the_page_shows_the_map_and_a_clicked_patch_s_strip_from_its_folder_only(
    page: Path, browser: object, tiny_cube: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(page.joinpath("index.html").as_uri())  # type: ignore[attr-defined]
    assert driver.execute_script("return document.getElementById('count').textContent") == "6 of 6 patches shown"
    driver.save_screenshot(str(tmp_path / "map.png"))
    screenshot = np.asarray(Image.open(tmp_path / "map.png").convert("RGB"))
    assert screenshot.shape[1] >= 1000 and len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 20  # land, patches

    ds = open_cube(tiny_cube, chunks=None)
    expected = colouring(map_model(ds), "coverage")
    drawn = driver.execute_script("return [0,1,2,3,4,5].map((i) => crtsMap.colourOf(i))")
    assert np.abs(np.array(drawn) - expected.rgb.astype(int)).max() <= 1  # values rounded to 0.001 in data.js
    driver.execute_script(
        "const by = document.getElementById('by'); by.value = 'region'; by.dispatchEvent(new Event('change'))"
    )
    drawn = driver.execute_script("return [0,1,2,3,4,5].map((i) => crtsMap.colourOf(i))")
    assert drawn == colouring(map_model(ds), "region").rgb.tolist()
    assert "europa" in driver.find_element("id", "legend").text
    driver.find_element("css selector", "#regions input[value=europa]").click()
    assert driver.execute_script("return crtsMap.shown()") == [3, 4, 5]

    lon, lat = map_model(ds).outlines[4].mean(axis=0)
    driver.execute_script(f"crtsMap.view({lon}, {lat}, 200000)")  # zoomed in: 2 px per 10 m pixel
    x, y = driver.execute_script("return crtsMap.centre(4)")
    canvas = driver.find_element("id", "canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, int(x - width / 2), int(y - height / 2)).click().perform()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements("css selector", ".step"))
    captions = [e.text for e in driver.find_elements("css selector", ".step .caption")]
    dates = [str(d)[:10] for d in ds.S2_date.values[4]]
    assert [c.split()[0] for c in captions] == dates
    assert driver.find_element("id", "title").text.startswith("ROIs2017/32 patch 334 | test | africa")
    pick = choose_steps(ds.coverage.values[[4], :, 0], 2)
    target = driver.find_elements("css selector", ".step.target")
    assert [int(e.get_attribute("data-step")) for e in target] == pick.target.tolist()
    assert len(driver.find_elements("css selector", "#curve polyline.detector")) == 3

    # the page's requests stay in its folder; nothing at all (the browser's own pages included) goes out
    requests = requested(driver)
    assert not [url for _, url in requests if url.startswith(("http:", "https:", "ws:", "wss:"))]
    ours = [url for document, url in requests if document.startswith("file:")]
    assert {f"{page.as_uri()}/{name}" for name in ("strips/4.js", "thumbs/4.webp", "data.js", "land.js")} <= set(ours)
    outside = [url for url in ours if not url.startswith(page.as_uri() + "/")]
    assert not outside, outside


def test_the_page_is_its_folder_s_files_only_with_one_strip_and_sprite_per_patch(page: Path, tiny_cube: Path) -> None:
    names = sorted(p.relative_to(page).as_posix() for p in page.rglob("*") if p.is_file())
    per_patch = [f"strips/{i}.js" for i in range(6)] + [f"thumbs/{i}.webp" for i in range(6)]
    assert names == sorted(["index.html", "explore.js", "land.js", "data.js", *per_patch])
    with Image.open(page / "thumbs" / "4.webp") as sprite:
        assert sprite.size == (4 * 32, 2 * 32)  # 4 steps of a 32 px patch (smaller than 64 px: not shrunk)
    data = json.loads((page / "data.js").read_text().removeprefix("var CRTS_MAP = ").rstrip(";\n"))
    assert data["patches"]["roi"][4] == "ROIs2017/32" and len(data["patches"]["outline"]) == 6 * 8
    assert {"clear/s2cloudless_mask", "coverage/s2cloudless_mask", "month/s2cloudless_map/12", "split"} <= set(
        data["units"]
    )


def test_a_page_is_rewritten_without_thumbnails_and_a_foreign_folder_refused(tiny_cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "map"
    first = write_page(tiny_cube, out)
    again = write_page(tiny_cube, out, thumbnails=False)
    assert first["patches"] == again["patches"] == 6 and again["bytes"] < first["bytes"]
    assert not list((out / "thumbs").iterdir()) and len(list((out / "strips").iterdir())) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]  # nothing beside the page
    with pytest.MonkeyPatch.context() as patch:  # a failure (or Ctrl-C) after the first strips
        patch.setattr("cube.explore.page.write_strip", lambda *task: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            write_page(tiny_cube, out)
    assert not (out / "data.js").exists()  # the page says it is unfinished: it opens without data
    assert write_page(tiny_cube, out)["patches"] == 6 and (out / "data.js").is_file()  # and is written again
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes: holds files that are not a map page \(e.g. todo.txt\)"):
        write_page(tiny_cube, tmp_path / "notes")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_worker_processes_write_the_same_page(tiny_cube: Path, page: Path, tmp_path: Path) -> None:
    out = tmp_path / "map"
    pick = functools.partial(choose_steps, n_input_samples=2)
    assert write_page(tiny_cube, out, pick=pick, workers=2)["patches"] == 6
    for name in ("data.js", *(f"strips/{i}.js" for i in range(6)), *(f"thumbs/{i}.webp" for i in range(6))):
        assert (out / name).read_bytes() == (page / name).read_bytes(), name
    with pytest.raises(ValueError, match="give its path or URL, not an opened Dataset"):
        write_page(open_cube(tiny_cube, chunks=None), tmp_path / "other", workers=2)
    assert not (tmp_path / "other").exists()
