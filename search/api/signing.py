"""Signed media URLs: how a browser loads thumbnails and plays videos from a private API.

With ``api.protect_reads`` every read needs the ``X-API-Key`` header, but a browser fetches an
``<img src>`` or ``<video src>`` itself and cannot add a header. So the media URLs the API hands
out carry ``exp`` (unix seconds) and ``sig``: an HMAC-SHA256, under a key derived from the API
key (the key itself never appears in a URL), of the exact path (endpoint and id), the expiry,
and every other query value (a clip's ``start`` and ``end``). A signature therefore opens one
endpoint of one item (a thumbnail's cannot fetch the file) over one span, until it expires.

Expiries are rounded up to a step of a tenth of the TTL, so the URLs of one item stay the same
for a while: the browser's cache and Streamlit's reruns see the same URL, not a new one per
search. A URL is valid for between ``ttl`` and ``ttl`` plus one step.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

EXP, SIG = "exp", "sig"  # the query parameters a signature adds
_CONTEXT = b"mmsearch media URL signature v1"  # separates this key from any other use of the API key


class SignatureError(Exception):
    """A signed URL that opens nothing; the message is written for the user."""


class Expired(SignatureError):
    """A genuine signature whose time is up."""


class UrlSigner:
    """Signs and checks media paths with one derived key; the clock is injectable for tests."""

    def __init__(self, api_key: str, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(api_key.encode(), _CONTEXT, hashlib.sha256).digest()
        self.ttl = ttl
        self._step = max(1, ttl // 10)
        self._clock = clock

    def sign(self, path: str, params: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """The ``exp`` and ``sig`` parameters to add to ``path?params`` (path not percent-encoded)."""
        now = int(self._clock())
        exp = (now // self._step + 1) * self._step + self.ttl
        return [(EXP, str(exp)), (SIG, self._mac(path, exp, params))]

    def verify(self, path: str, params: Sequence[tuple[str, str]], exp: str | None, sig: str | None) -> None:
        """Raise ``SignatureError`` unless ``sig`` signs exactly this path, these other parameters
        and ``exp``, and ``exp`` is still ahead (``Expired`` for a genuine but stale one)."""
        if not exp or not sig:
            raise SignatureError("A signed URL needs both exp and sig.")
        if not exp.isascii() or not exp.isdigit() or len(exp) > 12:
            raise SignatureError("The signed URL's exp is not a time.")
        expected = self._mac(path, int(exp), params)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise SignatureError("The URL's signature is not valid for this path; ask the API for the item's URL again.")
        if int(exp) <= self._clock():
            when = datetime.fromtimestamp(int(exp), timezone.utc).isoformat(timespec="seconds")
            raise Expired(f"This signed URL expired at {when}; ask the API for the item's URL again.")

    def _mac(self, path: str, exp: int, params: Sequence[tuple[str, str]]) -> str:
        message = json.dumps([path, exp, sorted(params)], separators=(",", ":")).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
