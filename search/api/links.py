"""The media URLs a response hands out: under the API's mount path, signed when reads are private.

Responses only ever point at these four endpoints; ``SIGNED_ROUTES`` names them by their route
templates, so the guard in ``deps`` knows where a signature may stand in for the API key, and
rebuilds the signed path from the route and its parameters exactly as ``Links`` signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from search.api.signing import UrlSigner

MEDIA_THUMBNAIL = "/media/{media_id}/thumbnail"
MEDIA_FILE = "/media/{media_id}/file"
MEDIA_CLIP = "/media/{media_id}/clip"
POINT_THUMBNAIL = "/points/{point_id}/thumbnail"
SIGNED_ROUTES = frozenset({MEDIA_THUMBNAIL, MEDIA_FILE, MEDIA_CLIP, POINT_THUMBNAIL})


@dataclass(frozen=True)
class Links:
    """Builds media URLs; ``signer`` is None when reads are open (the URLs then carry no signature)."""

    base: str = ""
    signer: UrlSigner | None = None

    def media_thumbnail(self, media_id: str) -> str:
        return self._link(MEDIA_THUMBNAIL, "media_id", media_id)

    def media_file(self, media_id: str) -> str:
        return self._link(MEDIA_FILE, "media_id", media_id)

    def point_thumbnail(self, point_id: str) -> str:
        return self._link(POINT_THUMBNAIL, "point_id", point_id)

    def clip(self, media_id: str, start: float, end: float) -> str:
        """A span as its own MP4; a signature covers the span, so it cannot open another one."""
        return self._link(MEDIA_CLIP, "media_id", media_id, [("start", f"{start:.3f}"), ("end", f"{end:.3f}")])

    def _link(self, template: str, name: str, value: str, params: Sequence[tuple[str, str]] = ()) -> str:
        query = list(params)
        if self.signer is not None:
            query += self.signer.sign(template.format(**{name: value}), params)
        url = self.base + template.format(**{name: quote(value, safe="")})
        return f"{url}?{urlencode(query)}" if query else url


PLAIN = Links()  # unsigned, unprefixed: for callers outside a request (the CLI's JSON output)
