"""The UI's HTTP client and query composition, without Streamlit.

The client is checked against a real HTTP server on 127.0.0.1 that misbehaves on purpose
(too slow, a 500 with an HTML body, a 400 with a syntax-error position), because those are
the answers a person must see as one clear sentence instead of a traceback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ui import format as fmt
from ui import query_state
from ui.client import ApiClient, ApiError, ApiTimeout, ApiUnavailable, Filters, SearchOptions
from ui.query_state import BuilderTerm


class Misbehaving(BaseHTTPRequestHandler):
    """``/slow`` answers late; ``/search`` answers 400 with a position; anything else 500 in HTML."""

    def do_GET(self) -> None:
        if self.path.startswith("/healthz"):
            time.sleep(1.5)
            self._send(200, b'{"status": "ok", "version": "x"}', "application/json")
        else:
            self._send(500, b"<html>Internal Server Error</html>", "text/html")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = {"detail": "unexpected '+' at position 8", "error": "bad_query", "position": 8}
        self._send(400, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as the slow test wants

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_slow_api_is_reported_as_busy_not_as_a_crash(server: str) -> None:
    client = ApiClient(server, timeout=0.3)
    with pytest.raises(ApiTimeout, match="did not answer in time"):
        client._request("GET", "/healthz")


def test_a_server_error_says_whose_fault_it_is_without_raw_html(server: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(server).stats()
    assert caught.value.status == 500
    assert caught.value.message.startswith("The API could not answer (500)")
    assert "<html>" not in caught.value.message


def test_a_syntax_error_keeps_the_servers_message_and_position(server: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(server).search('"red" + + "blue"', SearchOptions())
    error = caught.value
    assert (error.status, error.kind, error.position) == (400, "bad_query", 8)
    assert error.message == "unexpected '+' at position 8"
    assert fmt.caret('"red" + + "blue"', error.position) == '"red" + + "blue"\n        ^'


def test_nothing_listening_is_reported_with_the_address_and_what_to_start() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ApiUnavailable, match=rf"127\.0\.0\.1:{port}.*mmsearch serve"):
            ApiClient(f"http://127.0.0.1:{port}").stats()


def test_only_restricting_filters_are_sent() -> None:
    assert Filters().to_json() == {}
    chosen = Filters(kinds=("product",), categories=("kites",), min_price=10.0)
    assert chosen.to_json() == {"kinds": ["product"], "categories": ["kites"], "min_price": 10.0}
    assert chosen.to_params() == [("kind", "product"), ("category", "kites"), ("min_price", "10.0")]


def test_video_options_are_sent_only_for_video_targets() -> None:
    assert "pooling" not in SearchOptions().to_json()
    moments = SearchOptions(target="moments", pooling="mean", per_video=2, dedup=False).to_json()
    assert moments == {"target": "moments", "limit": 24, "offset": 0, "pooling": "mean", "per_video": 2, "dedup": False}
    assert ("dedup", "false") in SearchOptions(dedup=False).to_params()


def test_plain_words_are_literal_text_and_operators_make_arithmetic() -> None:
    assert query_state.compose("it's a t-shirt", []) == ("it's a t-shirt", True)
    assert query_state.compose('"beach" - "people"', []) == ('"beach" - "people"', False)
    assert query_state.compose("  ", []) == ("", False)


def test_builder_terms_join_the_box_with_their_signed_weights() -> None:
    terms = [BuilderTerm("id", "abc", weight=1.0), BuilderTerm("text", 'say "hi"', weight=-0.5)]
    assert query_state.compose("red circle", terms) == ('"red circle" + id:abc - 0.5*"say \\"hi\\""', False)
    assert query_state.compose("", [BuilderTerm("id", "abc", weight=-1.0)]) == ("- id:abc", False)


def test_adding_the_same_item_twice_sums_its_weights_and_zero_removes_it() -> None:
    state: dict = {}
    query_state.set_page(state, 3)
    query_state.add_term(state, BuilderTerm("id", "abc", weight=1.0))
    assert query_state.page(state) == 0, "a new composition starts at the first page"
    query_state.add_term(state, BuilderTerm("id", "abc", weight=0.5))
    assert [t.weight for t in query_state.terms(state)] == [1.5]
    query_state.add_term(state, BuilderTerm("id", "abc", weight=-1.5))
    assert query_state.terms(state) == []


def test_times_read_like_a_video_player() -> None:
    assert [fmt.timestamp(s) for s in (0, 7.4, 65, 3723)] == ["0:00", "0:07", "1:05", "1:02:03"]
    assert fmt.time_range(23.0, 27.0) == "0:23–0:27"
    assert fmt.timestamp(float("nan")) == "–"
