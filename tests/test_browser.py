"""The UI in a real browser: Debian's headless Chromium, driven by Playwright, on the live API.

AppTest checks what the scripts emit; only a browser shows that the page really renders: the
Streamlit front end loads, the query box takes input, and the thumbnails (fetched by the
browser straight from the API) decode into pictures. A plain ``chromium --screenshot`` would
capture Streamlit's loading skeleton, so the test drives the page and waits for the images.
The last tests do it again against a private API (protected reads), whose media URLs the
browser can only load because they are signed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.jobs import run_ingest
from search.api import create_app
from search.embedder import Embedder
from search.services import IngestRequest
from tests import ui_live
from tests._ingest_support import SharedModelServices, base_settings, make_image, make_video

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the flags the issue names; Playwright adds --headless itself (headless=True)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
RESULT_IMAGES = '[class*="st-key-results"] img'
ALL_RENDERED = """([selector, least]) => {
  const images = [...document.querySelectorAll(selector)];
  return images.length >= least && images.every((i) => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    api = ui_live.shared_api()
    with ui_live.live_ui(api.url, tmp_path_factory.mktemp("ui-log")) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path):
    """A page in a fresh Chromium profile (its own user data folder under the test's tmp_path)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_a_query_in_the_browser_renders_result_thumbnails(page, ui_url: str, tmp_path: Path) -> None:
    _ask(page, ui_url, "Query", "a red shape")
    _wait_for_results(page, RESULT_IMAGES, 4)
    widths = page.eval_on_selector_all(RESULT_IMAGES, "images => images.map((i) => i.naturalWidth)")
    shot = tmp_path / "search-results.png"
    page.screenshot(path=str(shot), full_page=True)
    assert len(widths) >= 4 and all(width > 0 for width in widths)
    assert page.get_by_text("img_").first.is_visible()
    assert shot.stat().st_size > 10_000
    assert page.locator("text=Traceback").count() == 0


def test_the_moment_player_starts_at_the_moment(page, ui_url: str, tmp_path: Path) -> None:
    """The browser loads the video through the API's range endpoint and seeks to the moment."""
    _ask(page, f"{ui_url}/pages_moments", "Describe the moment", "a green diamond")
    player = _wait_for_player(page)
    caption = page.get_by_text("Playing ").first.inner_text()
    start = int(caption.split("Playing ", 1)[1].split(":")[0]) * 60 + int(caption.split(":")[1][:2])
    current = player.evaluate("(v) => v.currentTime")
    page.screenshot(path=str(tmp_path / "moments.png"), full_page=True)
    assert player.evaluate("(v) => v.duration") > 0
    assert abs(current - start) <= 1.0, (current, caption)


# --- a private API: the browser loads media through signed URLs ---------------------------------------

KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def private_ui_url(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[str]:
    """A few pictures and a video behind an API with protected reads (uvicorn in this process),
    and the UI started as ``mmsearch serve`` starts it, with the key."""
    root = tmp_path_factory.mktemp("private")
    for colour in ("red", "green", "blue", "yellow"):
        make_image(root / "media" / f"img_{colour}.png", colour, size=(160, 120))
    make_video(root / "media" / "colours.mp4", ["green", "yellow", "green"], seconds_each=2.0)
    settings = base_settings(root / "data", api={"api_key": KEY, "protect_reads": True})
    services = SharedModelServices(settings, embedder)
    run_ingest(services, IngestRequest(paths=(str(root / "media"),)))
    try:
        with (
            ui_live.serving_in_thread(create_app(settings, services=services)) as api_url,
            ui_live.live_ui(api_url, root, api_key=KEY) as url,
        ):
            yield url
    finally:
        services.close()


def test_with_protected_reads_the_browser_renders_signed_thumbnails(page, private_ui_url: str, tmp_path: Path) -> None:
    _ask(page, private_ui_url, "Query", "red")
    _wait_for_results(page, RESULT_IMAGES, 2)
    sources = page.eval_on_selector_all(RESULT_IMAGES, "images => images.map((i) => i.src)")
    page.screenshot(path=str(tmp_path / "private-results.png"), full_page=True)
    assert sources and all("/thumbnail?" in src and "sig=" in src and KEY not in src for src in sources), sources
    assert page.locator("text=Traceback").count() == 0


def test_with_protected_reads_the_browser_plays_a_signed_video(page, private_ui_url: str, tmp_path: Path) -> None:
    _ask(page, f"{private_ui_url}/pages_moments", "Describe the moment", "yellow")
    player = _wait_for_player(page)
    page.screenshot(path=str(tmp_path / "private-moments.png"), full_page=True)
    assert player.evaluate("(v) => v.duration") > 0
    assert "sig=" in player.evaluate("(v) => v.currentSrc")
    clip = page.get_by_role("link", name="Clip").first.get_attribute("href") or ""
    assert "/clip?" in clip and "sig=" in clip


# --- what every browser test does ---------------------------------------------------------------------


def _ask(page, url: str, label: str, text: str) -> None:
    """Open ``url`` and submit ``text`` in the field labelled ``label``."""
    page.goto(url, wait_until="domcontentloaded")
    box = page.get_by_label(label)
    box.wait_for(timeout=60_000)
    box.fill(text)
    box.press("Enter")


def _wait_for_results(page, selector: str, count: int) -> None:
    """At least ``count`` images under ``selector`` have loaded, and then the rest of the grid."""
    page.wait_for_function(ALL_RENDERED, arg=[selector, count], timeout=60_000)
    # Streamlit may add the rest of the grid after the first images load: wait for those too.
    page.wait_for_timeout(1_000)
    page.wait_for_function(ALL_RENDERED, arg=[selector, count], timeout=60_000)


def _wait_for_player(page):
    """The first moment's thumbnail has loaded and the player knows its video's length."""
    page.wait_for_function(ALL_RENDERED, arg=['[class*="st-key-moments"] img', 1], timeout=60_000)
    player = page.locator("video").first
    player.wait_for(timeout=30_000)
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1; }", timeout=30_000)
    return player
