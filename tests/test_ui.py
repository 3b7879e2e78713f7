"""The Streamlit UI, page by page, against a live API on a small indexed procedural corpus.

Each test drives ``ui/app.py`` with ``streamlit.testing.v1.AppTest`` (the real script, the
real HTTP client, the real ``mmsearch serve`` from ``tests/ui_live.py``) and checks what a
person would see: result titles, time ranges, metrics, error messages. What the images
show is known from the corpus's truth file, so "the right images" is checked, not guessed.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests import ui_live
from ui.components import UNEXPECTED

pytestmark = pytest.mark.slow

APP = ui_live.ROOT / "ui" / "app.py"
TITLE = re.compile(r'class="mm-title"(?: title="([^"]*)")?>(?:\d+\. )?([^<]*)<')
KIND = re.compile(r'class="mm-kind">([^<]*)<')
RANGE = re.compile(r"^(\d+):(\d\d)–(\d+):(\d\d)$")


@pytest.fixture(scope="module")
def api() -> ui_live.LiveApi:
    return ui_live.shared_api()


@pytest.fixture
def app(api: ui_live.LiveApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The whole app (navigation and all), pointed at the live API through its one setting."""
    monkeypatch.setenv("MMSEARCH_API_URL", api.url)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert_clean(at)
    yield at


# --- reading the page ---------------------------------------------------------------------------


def assert_clean(at: AppTest) -> None:
    """No traceback, no last-resort "unexpected problem" message."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if UNEXPECTED in e.value]


def titles(at: AppTest) -> list[str]:
    """Result card titles, in rank order (file names for photos, titles for products)."""
    found = []
    for block in at.markdown:
        match = TITLE.search(block.value)
        if match:
            found.append((match.group(1) or match.group(2)).replace("&amp;", "&"))
    return found


def kinds(at: AppTest) -> list[str]:
    return [m.group(1) for block in at.markdown for m in KIND.finditer(block.value)]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [w.value for w in at.warning]


def search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="search.query").input(query).run()
    assert_clean(at)
    return at


def button(at: AppTest, prefix: str, suffix: str):
    """The first button whose key starts with ``prefix`` and ends with ``suffix``."""
    return next(b for b in at.button if b.key and b.key.startswith(prefix) and b.key.endswith(suffix))


def seconds(text: str) -> tuple[int, int]:
    match = RANGE.match(text)
    assert match, text
    a, b, c, d = map(int, match.groups())
    return a * 60 + b, c * 60 + d


# --- Search page ------------------------------------------------------------------------------


def test_a_text_query_shows_photos_of_that_colour_first(app: AppTest, api: ui_live.LiveApi) -> None:
    at = search(app, "a red shape")
    shown = titles(at)
    assert len(shown) >= 5
    photos = [name for name in shown if name.startswith("img_")]
    assert "red" in api.data.image_colours(photos[0])
    assert sum("red" in api.data.image_colours(name) for name in photos[:3]) >= 2
    assert all(image.value and image.value[0].startswith(f"{api.url}/") for image in at.image[:5])


def test_arithmetic_changes_the_colour_and_echoes_the_terms(app: AppTest, api: ui_live.LiveApi) -> None:
    at = search(app, '"a red circle" - "red" + "green"')
    photos = [name for name in titles(at) if name.startswith("img_")]
    assert "green" in api.data.image_colours(photos[0])
    summary = next(m.value for m in at.markdown if m.value.startswith("Results"))
    assert "query:" in summary and '− `"red"`' in summary and '+ `"green"`' in summary


def test_explain_splits_each_score_into_the_terms_shares(app: AppTest) -> None:
    app.toggle(key="search.explain").set_value(True).run()
    at = search(app, '"a red circle" - "red" + "green"')
    shares = [c.value for c in at.caption if c.value.startswith("`")]
    assert shares and all(share.count("`") == 6 for share in shares[:3]), shares[:3]


def test_the_term_builder_adds_a_weighted_text_term(app: AppTest, api: ui_live.LiveApi) -> None:
    at = search(app, "a red circle")
    at.text_input(key="terms.value").input("green")
    at.number_input(key="terms.weight").set_value(2.0)
    next(b for b in at.button if b.label == "Add term").click().run()
    assert_clean(at)
    summary = next(m.value for m in at.markdown if m.value.startswith("Results"))
    assert '+ 2×`"green"`' in summary, summary
    photos = [name for name in titles(at) if name.startswith("img_")]
    assert "green" in api.data.image_colours(photos[0])


def test_a_syntax_error_is_shown_under_the_box_with_its_position(app: AppTest) -> None:
    at = search(app, '"red" + + "blue"')
    assert errors(at), "the parser's complaint is shown"
    assert not titles(at)
    caret = [c.value for c in at.code if "^" in c.value]
    assert caret and caret[0].splitlines()[0] == '"red" + + "blue"'


def test_an_unknown_item_id_is_reported_as_a_message(app: AppTest) -> None:
    at = search(app, "id:00000000-0000-0000-0000-000000000000")
    assert any("No indexed item" in message and "00000000" in message for message in errors(at)), errors(at)
    assert not titles(at)


def test_an_uploaded_photo_finds_itself_first(app: AppTest, api: ui_live.LiveApi) -> None:
    name = "img_00013.jpg"
    data = (api.data.corpus / "images" / name).read_bytes()
    app.file_uploader(key="search.upload").set_value((name, data, "image/jpeg")).run()
    assert_clean(app)
    shown = titles(app)
    assert shown[0] == name


def test_an_upload_combines_with_text_terms(app: AppTest, api: ui_live.LiveApi) -> None:
    """A green photo plus "- green + red" turns the results red (image + text arithmetic)."""
    green = next(n for n in api.data.image_names() if api.data.image_colours(n) == {"green"})
    app.file_uploader(key="search.upload").set_value((green, _png_of(api, green), "image/png")).run()
    at = search(app, '- "green" + "red"')
    photos = [name for name in titles(at) if name.startswith("img_")]
    others = [name for name in photos if name != green]  # the photo itself may stay on top: its own term scores 1.0
    assert others and "red" in api.data.image_colours(others[0])


def test_use_as_query_adds_the_item_to_the_term_builder(app: AppTest) -> None:
    at = search(app, "a blue shape")
    first = titles(at)[0]
    button(at, "results_0_", "_1").click().run()  # the ➕ "use as query" button of the first card
    assert_clean(at)
    assert any(first in m.value and "id" in m.value for m in at.markdown), "the builder lists the item"
    assert titles(at), "the composed query (text + item) still finds results"
    button(at, "results_0_", "_0").click().run()  # "more like this" on the (new) first result
    assert_clean(at)
    assert any("More like" in i.value for i in at.info)
    assert titles(at)


def test_subtract_from_query_pushes_the_item_down(app: AppTest) -> None:
    app.multiselect(key="search.f.kind").set_value(["image"]).run()  # photo names are unique, product titles not
    at = search(app, "a blue shape")
    first = titles(at)[0]
    button(at, "results_0_", "_2").click().run()  # the ➖ "subtract from query" button
    assert_clean(at)
    assert any(first in m.value and "−" in m.value for m in at.markdown), "the builder lists it with a minus"
    assert titles(at) and titles(at)[0] != first


def test_a_date_range_with_nothing_in_it_empties_the_results(app: AppTest) -> None:
    at = search(app, "a blue shape")
    assert titles(at)
    at.toggle(key="search.f.date_on").set_value(True).run()
    assert titles(at), "the default range (the last year) holds the corpus, rendered today"
    long_ago = dt.date.today().year - 3  # inside the widget's allowed span, before the corpus existed
    at.date_input(key="search.f.dates").set_value((dt.date(long_ago, 1, 1), dt.date(long_ago, 12, 31))).run()
    assert_clean(at)
    assert not titles(at)
    assert any("No results" in m.value for m in at.markdown)


def test_the_kind_filter_keeps_only_products(app: AppTest) -> None:
    at = search(app, "a red shape")
    assert set(kinds(at)) - {"product"}, "unfiltered, photos come back too"
    at.multiselect(key="search.f.kind").set_value(["product"]).run()
    assert_clean(at)
    assert kinds(at) and set(kinds(at)) == {"product"}


def test_pages_of_results_follow_each_other(app: AppTest) -> None:
    app.multiselect(key="search.f.kind").set_value(["image"]).run()
    at = search(app, "a shape")
    at.selectbox(key="search.per_page").set_value(12).run()
    first = titles(at)
    at.button(key="search.next").click().run()
    assert_clean(at)
    second = titles(at)
    assert len(first) == 12 and second and not set(first) & set(second)
    assert any("Page **2**" in m.value for m in at.markdown)


# --- Video moments ---------------------------------------------------------------------------


def test_moments_show_start_times_inside_the_right_video(app: AppTest, api: ui_live.LiveApi) -> None:
    """Most described moments come back first, in their video, with a start–end covering them."""
    app.switch_page("pages_moments.py").run()
    found = []
    for video in api.data.truth["videos"]:
        name = Path(video["path"]).name
        for moment in video["moments"]:
            app.text_input(key="moments.query").input(f"a {moment['colour']} {moment['shape']}").run()
            assert_clean(app)
            heading = next(m.value for m in app.markdown if m.value.startswith("**1. "))
            start, end = seconds(titles(app)[0])
            found.append(name in heading and start <= moment["end"] and end >= moment["start"])
    assert sum(found) > len(found) / 2, found
    player = app.get("video")[0].proto
    assert player.url.startswith(f"{api.url}/media/") and "#" not in player.url
    assert abs(player.start_time - seconds(titles(app)[0])[0]) <= 1


def test_mean_pooling_and_whole_videos_can_be_chosen(app: AppTest) -> None:
    app.switch_page("pages_moments.py").run()
    app.text_input(key="moments.query").input("a green diamond").run()
    app.segmented_control(key="moments.pooling").set_value("mean").run()
    assert_clean(app)
    assert titles(app), "mean pooling finds moments too"
    app.segmented_control(key="moments.target").set_value("videos").run()
    assert_clean(app)
    assert any(m.value.startswith("**1. vid_") for m in app.markdown)


# --- Products ------------------------------------------------------------------------------------


def test_products_filter_by_category_and_show_similar_ones(app: AppTest, api: ui_live.LiveApi) -> None:
    app.switch_page("pages_products.py").run()
    app.text_input(key="products.query").input("a product").run()
    assert_clean(app)
    everything = titles(app)
    assert everything and all(t in {p["title"] for p in api.data.products()} for t in everything)
    category = api.data.product_by_title(everything[0])["category"]
    app.multiselect(key="products.f.category").set_value([category]).run()
    assert_clean(app)
    narrowed = titles(app)
    assert narrowed and all(api.data.product_by_title(t)["category"] == category for t in narrowed)
    button(app, "products_0_", "_0").click().run()
    assert_clean(app)
    assert any(m.value.startswith(f"#### Similar to {narrowed[0]}") for m in app.markdown)


def test_a_product_photo_finds_its_product(app: AppTest, api: ui_live.LiveApi) -> None:
    product = api.data.products()[3]
    photo = api.data.corpus / product["images"][0]
    app.switch_page("pages_products.py").run()
    app.file_uploader(key="products.upload").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    assert_clean(app)
    assert titles(app)[0] == product["title"]
    assert set(kinds(app)) == {"product"}


def test_products_filter_by_price(app: AppTest, api: ui_live.LiveApi) -> None:
    prices = sorted(p["price"] for p in api.data.products())
    median = prices[len(prices) // 2]
    app.switch_page("pages_products.py").run()
    app.text_input(key="products.query").input("a product").run()
    app.number_input(key="products.f.min_price").set_value(median).run()
    assert_clean(app)
    priced = titles(app)
    assert priced and all(api.data.product_by_title(t)["price"] >= median for t in priced)


# --- Status ----------------------------------------------------------------------------------


def test_status_shows_counts_model_and_health(app: AppTest, api: ui_live.LiveApi) -> None:
    app.switch_page("pages_status.py").run()
    assert_clean(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["API"] == "up" and metrics.get("Store") == "up" and metrics.get("Catalog") == "up"
    assert metrics.get("Broker") in ("none", "up"), "embedded mode has no broker, and says so"
    stats = httpx.get(f"{api.url}/stats").json()
    assert metrics["Photos"] == f"{stats['points']['image']:,}" and stats["points"]["image"] >= ui_live.N_IMAGES
    assert "Products" in metrics and "Video frames" in metrics
    assert ui_live.MODEL in str(app.table[0].value)


# --- Ingest ----------------------------------------------------------------------------------


def test_ingest_starts_a_job_and_shows_each_failure_with_its_reason(app: AppTest, api: ui_live.LiveApi, tmp_path: Path) -> None:
    folder = api.data_dir / f"new-{tmp_path.name}"  # inside the data dir: an allowed root of the API
    folder.mkdir()
    Image.new("RGB", (96, 96), (20, 200, 40)).save(folder / "good.png")
    (folder / "broken.jpg").write_text("this is not a picture")
    app.switch_page("pages_ingest.py").run()
    app.text_input(key="ingest.target").input(str(folder))
    next(b for b in app.button if b.label == "Start indexing").click().run()
    assert_clean(app)
    job_id = app.session_state["ingest.job"]
    job = ui_live.wait_for_job(api.url, job_id, 120)
    assert job["finished"]
    app.run()  # the watcher sees the finished job
    app.run()
    assert_clean(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Indexed"] == "1" and metrics["Failed"] == "1"
    failures = app.dataframe[0].value
    row = failures[failures["item"].str.contains("broken.jpg")]
    assert len(row) == 1 and row["reason"].iloc[0].strip()


def test_ingest_refuses_an_empty_target_with_a_hint(app: AppTest) -> None:
    app.switch_page("pages_ingest.py").run()
    next(b for b in app.button if b.label == "Start indexing").click().run()
    assert_clean(app)
    assert any("Enter a path" in w.value for w in app.warning)


# --- API down --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "query_key"),
    [
        ("pages_search.py", "search.query"),
        ("pages_moments.py", "moments.query"),
        ("pages_products.py", "products.query"),
        ("pages_ingest.py", None),
        ("pages_status.py", None),
    ],
)
def test_every_page_says_clearly_when_the_api_is_down(page: str, query_key: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_API_URL", f"http://127.0.0.1:{ui_live.free_port()}")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.switch_page(page).run()
    if query_key:
        at.text_input(key=query_key).input("a red circle").run()
    assert_clean(at)
    assert any("Cannot reach the mmsearch API" in e.value for e in at.error), errors(at)


def _png_of(api: ui_live.LiveApi, name: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(api.data.corpus / "images" / name).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
