"""The Search and Products pages' structured results, against the live API of ``tests/ui_live.py``:
products grouped with their variants, facet counts as filter buttons, sorting, feedback marks,
the ranking mode and diversity controls, and Material icons instead of emoji in the help text.
"""

from __future__ import annotations

from collections import Counter

import pytest
from streamlit.testing.v1 import AppTest

from tests import ui_live
from tests.test_ui import api, app, assert_clean, button, search, titles  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _products(app: AppTest, query: str = "a product") -> AppTest:  # noqa: F811
    app.switch_page("pages_products.py").run()
    app.text_input(key="products.query").input(query).run()
    assert_clean(app)
    return app


def test_products_show_one_card_per_product_with_its_other_photos(app: AppTest, api: ui_live.LiveApi) -> None:  # noqa: F811
    _products(app)
    grouped = titles(app)
    assert grouped and len(grouped) == len(set(grouped))  # "Collapse duplicates" on: each product once
    assert any("more photo" in c.value for c in app.caption)
    app.toggle(key="products.group").set_value(False).run()
    assert_clean(app)
    assert max(Counter(titles(app)).values()) > 1  # every photo its own card: the old Products page


def test_a_facet_button_filters_the_products_by_its_value(app: AppTest, api: ui_live.LiveApi) -> None:  # noqa: F811
    _products(app)
    facet = next(b for b in app.button if b.key and b.key.startswith("products_facet_category_"))
    category = facet.key.removeprefix("products_facet_category_")
    facet.click().run()
    assert_clean(app)
    assert app.multiselect(key="products.f.category").value == [category]
    shown = titles(app)
    assert shown and all(api.data.product_by_title(t)["category"] == category for t in shown)


def test_products_sort_by_price(app: AppTest, api: ui_live.LiveApi) -> None:  # noqa: F811
    _products(app)
    app.selectbox(key="products.sort").set_value("Price: low to high").run()
    assert_clean(app)
    prices = [api.data.product_by_title(t)["price"] for t in titles(app)]
    assert len(prices) > 2 and prices == sorted(prices)


def test_search_sorts_by_file_name_and_offers_mode_and_diversity(app: AppTest) -> None:  # noqa: F811
    app.multiselect(key="search.f.kind").set_value(["image"]).run()  # titles are then file names
    search(app, "a red circle")
    app.selectbox(key="search.sort").set_value("File name").run()
    assert_clean(app)
    names = titles(app)
    assert len(names) > 2 and names == sorted(names)
    app.segmented_control(key="search.mode").set_value("Visual").run()
    app.toggle(key="search.diverse").set_value(True).run()
    assert_clean(app)
    assert titles(app)


def test_liked_and_disliked_results_refine_the_query_and_are_shown(app: AppTest) -> None:  # noqa: F811
    search(app, "a shape")
    before = titles(app)
    button(app, "results_0_", "_3").click().run()  # 👍 on the first result
    button(app, "results_1_", "_4").click().run()  # 👎 on the second
    assert_clean(app)
    bar = [m.value for m in app.markdown if m.value.startswith("Refined by")]
    assert bar and ":material/thumb_up:" in bar[0] and ":material/thumb_down:" in bar[0]
    assert titles(app) != before
    app.button(key="feedback.clear").click().run()
    assert_clean(app)
    assert not [m for m in app.markdown if m.value.startswith("Refined by")]


def test_help_texts_use_material_icons_not_emoji(app: AppTest) -> None:  # noqa: F811
    text = " ".join(m.value for m in app.markdown)  # the welcome text and the syntax help
    assert "➕" not in text and "➖" not in text
