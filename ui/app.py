"""Streamlit entry point of the mmsearch UI: ``streamlit run ui/app.py``.

The UI is a pure HTTP client of the API; its only setting is ``MMSEARCH_API_URL``
(default http://127.0.0.1:8000), which must also be reachable from the browser because
thumbnails and videos load from it directly. Pages are files next to this one, so
Streamlit (and AppTest's ``switch_page``) can address each of them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # a checkout run without installing the package
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from ui import components  # noqa: E402

log = logging.getLogger("mmsearch.ui")

PAGES = (
    ("pages_search.py", "Search", ":material/search:"),
    ("pages_moments.py", "Video moments", ":material/movie:"),
    ("pages_products.py", "Products", ":material/shopping_bag:"),
    ("pages_ingest.py", "Ingest", ":material/cloud_upload:"),
    ("pages_duplicates.py", "Duplicates", ":material/content_copy:"),
    ("pages_status.py", "Status", ":material/monitor_heart:"),
)


def main() -> None:
    st.set_page_config(page_title="mmsearch", page_icon=":material/image_search:", layout="wide")
    components.inject_css()
    pages = [st.Page(path, title=title, icon=icon, default=index == 0) for index, (path, title, icon) in enumerate(PAGES)]
    page = st.navigation(pages)
    try:
        page.run()
    except Exception as error:
        log.exception("page %s failed", page.title)
        components.unexpected(error)
    st.sidebar.caption(f"mmsearch · API `{components.client().base_url}`")


main()
