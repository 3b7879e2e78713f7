"""Places: EXIF GPS positions become a geo field the API filters by radius and box.

Real JPEGs carrying GPS EXIF written by Pillow are ingested through the real pipeline into both
store backends (Qdrant Edge and qdrant-client local mode), then searched over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ingest.jobs import run_ingest
from search.api import create_app
from search.services import IngestRequest, Services
from tests._api_support import settings_for
from tests._ingest_support import make_image

# name -> (lat, lon) in decimal degrees; None: no GPS at all
PLACES: dict[str, tuple[float, float] | None] = {
    "tokyo.jpg": (35.6812, 139.7671),
    "yokohama.jpg": (35.4437, 139.6380),
    "paris.jpg": (48.8584, 2.2945),
    "santiago.jpg": (-33.4489, -70.6693),
    "fiji.jpg": (-17.7134, 178.0650),
    "nowhere.jpg": None,
}


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return float(degrees), float(minutes), seconds


def write_gps_jpeg(path: Path, position: tuple[float, float] | None, colour: str) -> None:
    make_image(path, colour, (96, 72))
    if position is None:
        return
    lat, lon = position
    image = Image.open(path)
    exif = image.getexif()
    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)})
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=90)


@pytest.fixture(scope="module", params=["edge", "local"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp(f"places-{request.param}")
    colours = ["red", "green", "blue", "yellow", "red", "green"]
    for (name, position), colour in zip(PLACES.items(), colours):
        write_gps_jpeg(root / "photos" / name, position, colour)
    settings = settings_for(request.param, root / "data")
    services = Services(settings)
    job = run_ingest(services, IngestRequest(paths=(str(root / "photos"),)))
    assert job.indexed == len(PLACES), job
    try:
        with TestClient(create_app(settings, services=services)) as test_client:
            yield test_client
    finally:
        services.close()


def _names(client: TestClient, filters: dict[str, object]) -> set[str]:
    response = client.post("/search", json={"query": "a photo", "filters": filters, "limit": 50})
    assert response.status_code == 200, response.text
    return {r["name"] for r in response.json()["results"]}


def test_results_show_where_they_were_taken(client: TestClient) -> None:
    response = client.post("/search", json={"query": "a photo", "limit": 50})
    assert response.status_code == 200, response.text
    located = {r["name"]: r["location"] for r in response.json()["results"]}
    assert set(located) == set(PLACES)
    assert located["nowhere.jpg"] is None
    assert located["santiago.jpg"]["lat"] == pytest.approx(-33.4489, abs=1e-3)
    assert located["santiago.jpg"]["lon"] == pytest.approx(-70.6693, abs=1e-3)


def test_radius_filter_keeps_what_lies_within(client: TestClient) -> None:
    assert _names(client, {"near": {"lat": 35.68, "lon": 139.77, "km": 5}}) == {"tokyo.jpg"}
    assert _names(client, {"near": {"lat": 35.68, "lon": 139.77, "km": 40}}) == {"tokyo.jpg", "yokohama.jpg"}
    assert _names(client, {"near": {"lat": 0.0, "lon": 0.0, "km": 100}}) == set()


def test_box_filter_including_one_across_the_antimeridian(client: TestClient) -> None:
    europe = {"north": 60.0, "west": -10.0, "south": 35.0, "east": 30.0}
    assert _names(client, {"area": europe}) == {"paris.jpg"}
    southern = {"north": 0.0, "west": -100.0, "south": -60.0, "east": 179.0}
    assert _names(client, {"area": southern}) == {"santiago.jpg", "fiji.jpg"}
    across = {"north": 0.0, "west": 170.0, "south": -30.0, "east": -170.0}
    assert _names(client, {"area": across}) == {"fiji.jpg"}


def test_media_endpoint_shows_the_location(client: TestClient) -> None:
    results = client.post("/search", json={"query": "a photo", "filters": {"near": {"lat": 48.86, "lon": 2.29, "km": 2}}})
    media_id = results.json()["results"][0]["media_id"]
    media = client.get(f"/media/{media_id}")
    assert media.status_code == 200, media.text
    assert media.json()["location"]["lat"] == pytest.approx(48.8584, abs=1e-3)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"near": {"lat": 91, "lon": 0, "km": 1}}, "lat"),
        ({"near": {"lat": 0, "lon": 200, "km": 1}}, "lon"),
        ({"near": {"lat": 0, "lon": 0, "km": 0}}, "km"),
        ({"area": {"north": -10, "west": 0, "south": 10, "east": 5}}, "area"),
    ],
)
def test_a_bad_place_is_a_4xx_naming_the_field(client: TestClient, filters: dict[str, object], field: str) -> None:
    response = client.post("/search", json={"query": "a photo", "filters": filters})
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


def test_query_parameters_filter_by_place_on_get_endpoints(client: TestClient) -> None:
    found = client.post("/search", json={"query": "a photo", "filters": {"near": {"lat": 35.68, "lon": 139.77, "km": 5}}})
    tokyo = found.json()["results"][0]["id"]
    near = client.get(f"/similar/{tokyo}", params={"near": "35.68,139.77,40", "limit": 50})
    assert near.status_code == 200, near.text
    assert {r["name"] for r in near.json()["results"]} == {"yokohama.jpg"}, "the example itself is left out"
    boxed = client.get(f"/similar/{tokyo}", params={"area": "60,-10,35,30"})
    assert {r["name"] for r in boxed.json()["results"]} == {"paris.jpg"}
    for bad, field in (("35.68,139.77", "near"), ("95,0,1", "lat"), ("a,b,c,d", "north")):
        response = client.get(f"/similar/{tokyo}", params={"near" if field != "north" else "area": bad})
        assert response.status_code == 422 and field in response.text, response.text
