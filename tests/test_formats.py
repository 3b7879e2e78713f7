"""Real photo-archive formats: HEIC and AVIF from their encoders, camera RAW through LibRaw, and lies.

HEIC files are written by pillow-heif and AVIF files by Pillow, each with EXIF (date, camera,
lens, GPS, orientation). No RAW encoder exists, so a minimal valid DNG (a TIFF with DNG tags,
a Bayer CFA and optionally an RGB preview) is written with tifffile; every other RAW extension
is checked for recognition and for a clear failure on bytes that are not that format.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ingest.sources.folder import IMAGE_EXTENSIONS as DISCOVERED_EXTENSIONS
from search.errors import MediaError
from search.media import decode_image, sniff
from search.media.exif import exif_from_parts
from search.media.formats import RAW_EXTENSIONS, format_for_extension
from search.media.raw import container_exif
from search.media.sniff import classify_tiff
from synthetic.render import render_scene
from synthetic.scene import sample_scene

tifffile = pytest.importorskip("tifffile", reason="tifffile (a dev extra) writes the test DNG files")

ROOT = Path(__file__).resolve().parent.parent
TOKYO = (35.0, 39.0, 36.0), (139.0, 42.0, 0.0)  # 35.66 N, 139.70 E


def phone_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15 Pro"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:06 07:08:09"
    sub[0x9011] = "+09:00"
    sub[0xA433] = "Apple"
    sub[0xA434] = "iPhone 15 Pro back camera 6.86mm f/1.78"
    exif.get_ifd(0x8825).update({1: "N", 2: TOKYO[0], 3: "E", 4: TOKYO[1]})
    return exif


def red_left_blue_right(width: int = 300, height: int = 200) -> Image.Image:
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def heic(image: Image.Image, **options: object) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encoded(image, "HEIF", quality=90, enc_params={"preset": "ultrafast"}, **options)  # x265's fastest preset


def avif(image: Image.Image, **options: object) -> bytes:
    return encoded(image, "AVIF", quality=90, speed=10, **options)  # libaom's fastest speed


def make_dng(path: Path, scene: np.ndarray, preview: np.ndarray | None = None, orientation: int = 1) -> Path:
    """A minimal valid DNG: an RGGB mosaic of ``scene`` (H x W x 3, sRGB uint8) as 12-bit linear light.

    With ``preview`` the first directory is that RGB preview and the CFA sits in a SubIFD, as
    cameras write it; without, the CFA is the first directory (no preview to extract).
    """
    h, w = scene.shape[:2]
    srgb = scene.astype(np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)  # sensors count light
    rgb = np.round(linear * 4095).astype(np.uint16)  # 12 bits
    cfa = np.empty((h, w), np.uint16)
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]
    # ColorMatrix1 maps XYZ to camera space: XYZ -> linear sRGB makes the "camera" see sRGB primaries
    xyz_to_srgb = (32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570)
    matrix = tuple(v for value in xyz_to_srgb for v in (value, 10000))
    camera = [
        (271, "s", 0, "Testcam", True),  # Make
        (272, "s", 0, "Testcam DNG-1", True),  # Model
        (274, "H", 1, orientation, True),
        (306, "s", 0, "2023:04:05 06:07:08", True),  # DateTime
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "Testcam DNG-1", True),  # UniqueCameraModel
        (50721, "2i", 9, matrix, True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1 = D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    mosaic = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50717, "I", 1, 4095, True)]
    with tifffile.TiffWriter(path) as tif:
        if preview is not None:
            tif.write(preview, photometric="rgb", subfiletype=1, extratags=camera, subifds=1)
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=mosaic)
        else:
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=camera + mosaic)
    return path


def top_and_bottom(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.asarray(image)
    middle = pixels.shape[1] // 2
    return pixels[3, middle].astype(int), pixels[-4, middle].astype(int)


def assert_red_on_top(image: Image.Image) -> None:
    top, bottom = top_and_bottom(image)
    assert top[0] > 180 and top[2] < 90, f"the stored left (red) half is on top once upright, got {top}"
    assert bottom[2] > 180 and bottom[0] < 90, f"the stored right (blue) half is at the bottom, got {bottom}"


# -- HEIC and AVIF -----------------------------------------------------------------------------


@pytest.mark.parametrize("writer,mime", [(heic, "image/heic"), (avif, "image/avif")])
def test_phone_photos_decode_upright_with_their_exif(writer, mime: str) -> None:
    data = writer(red_left_blue_right(), exif=phone_exif(orientation=6).tobytes())
    assert sniff(data[:512]).mime == mime
    decoded = decode_image(data, draft_size=64)
    assert decoded.mime == mime
    assert (decoded.width, decoded.height) == (200, 300), "the displayed size, after the 90-degree turn"
    assert_red_on_top(decoded.image)
    exif = decoded.exif
    assert exif.taken_at == pytest.approx(1714946889.0), "2024-05-06 07:08:09 +09:00"
    assert (exif.make, exif.model, exif.camera) == ("Apple", "iPhone 15 Pro", "Apple iPhone 15 Pro")
    assert exif.lens and "6.86mm f/1.78" in exif.lens
    assert exif.gps_lat == pytest.approx(35.66) and exif.gps_lon == pytest.approx(139.70)


@pytest.fixture(scope="module")
def embedder():
    from search.embedder import load_embedder
    from search.settings import load_settings

    previous = torch.get_num_threads()
    yield load_embedder(load_settings(model="mmsearch-synthetic", device="cpu", embedder={"threads": 1, "offline": True}))
    torch.set_num_threads(previous)


def test_heic_and_avif_files_are_embedded_like_the_picture_they_hold(tmp_path: Path, embedder) -> None:
    rng = np.random.default_rng(13)
    pairs = (("red", "circle"), ("blue", "square"))
    scenes = [render_scene(sample_scene(rng, pairs=[pair], n_objects=1), 256) for pair in pairs]
    originals = embedder.encode_images(scenes)
    for writer, suffix in ((heic, ".heic"), (avif, ".avif")):
        paths = []
        for i, scene in enumerate(scenes):
            paths.append(tmp_path / f"scene{i}{suffix}")
            paths[-1].write_bytes(writer(scene))
        decoded = [decode_image(path, draft_size=embedder.image_size).image for path in paths]
        vectors = embedder.encode_images(decoded)
        assert np.all(np.sum(vectors * originals, axis=1) > 0.95), f"{suffix}: the codec keeps what the model sees"
        scores = vectors @ embedder.encode_texts(["red circle"])[0]
        assert scores[0] > scores[1], f"{suffix}: the red circle answers 'red circle'"


def test_a_corrupt_heic_fails_with_a_reason_naming_heic(tmp_path: Path) -> None:
    data = heic(red_left_blue_right())
    broken = data[:40] + bytes(len(data) - 40)  # the ftyp box survives, everything after is zeros
    with pytest.raises(MediaError, match="HEIC") as caught:
        decode_image(broken)
    assert "cannot identify" not in str(caught.value)
    with pytest.raises(MediaError, match="HEIC"):
        decode_image(data[: len(data) // 2])


def test_a_jpeg_named_heic_is_decoded_as_the_jpeg_it_is(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.heic"
    path.write_bytes(encoded(red_left_blue_right(), "JPEG", quality=90))
    decoded = decode_image(path)
    assert decoded.mime == "image/jpeg" and decoded.image.size == (300, 200)
    liar = tmp_path / "notes.heic"
    liar.write_text("shopping list: eggs, milk\n")
    with pytest.raises(MediaError, match="not an image: the content is text, not the HEIC its name says"):
        decode_image(liar)


@pytest.mark.parametrize(
    "module,writer,message",
    [
        ("pillow_heif", "heic", "HEIC needs pillow-heif: pip install pillow-heif"),
        ("rawpy", "dng", "DNG needs rawpy: pip install rawpy"),
    ],
)
def test_a_missing_decoder_names_the_package_to_install(tmp_path: Path, module: str, writer: str, message: str) -> None:
    """A fresh interpreter in which the decoder package cannot be imported (as on a machine without it)."""
    if writer == "heic":
        path = tmp_path / "photo.heic"
        path.write_bytes(heic(red_left_blue_right()))
    else:
        path = make_dng(tmp_path / "photo.dng", np.zeros((64, 64, 3), np.uint8))
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from pathlib import Path\n"
        "from search.media import decode_image\n"
        "from search.media.formats import MissingDecoder\n"
        "try:\n"
        f"    decode_image(Path({str(path)!r}))\n"
        "except MissingDecoder as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert message in done.stdout


# -- camera RAW --------------------------------------------------------------------------------


def scene_pixels(size: tuple[int, int] = (480, 320)) -> np.ndarray:
    return np.asarray(red_left_blue_right(*size))


def test_a_dng_with_a_large_enough_preview_is_decoded_from_the_preview(tmp_path: Path) -> None:
    path = make_dng(tmp_path / "a.dng", scene_pixels(), preview=scene_pixels((300, 240)))
    assert sniff(path.read_bytes()[:512]).mime == "image/x-adobe-dng"
    decoded = decode_image(path, draft_size=224)
    assert decoded.mime == "image/x-adobe-dng" and decoded.via == "preview"
    assert (decoded.width, decoded.height) == (480, 320), "the sensor image's size, not the preview's"
    assert decoded.exif.camera == "Testcam DNG-1" and decoded.exif.taken_at == pytest.approx(1680674828.0)


def test_the_preview_threshold_follows_what_the_caller_needs(tmp_path: Path) -> None:
    path = make_dng(tmp_path / "a.dng", scene_pixels(), preview=scene_pixels((300, 240)))
    assert decode_image(path, draft_size=240).via == "preview"
    needs_more = decode_image(path, draft_size=241)
    assert needs_more.via == "demosaic", "a 240-pixel preview cannot serve a caller that needs 241"
    assert min(needs_more.image.size) >= 241
    assert decode_image(path).via == "demosaic", "full resolution asked, the preview is smaller"


def test_a_dng_without_a_preview_is_demosaiced_at_half_size(tmp_path: Path) -> None:
    path = make_dng(tmp_path / "a.dng", scene_pixels())
    decoded = decode_image(path.read_bytes(), draft_size=120)
    assert decoded.via == "demosaic" and decoded.image.size == (240, 160), "half_size: one pixel per 2x2 block"
    left, right = np.asarray(decoded.image)[80, 20].astype(int), np.asarray(decoded.image)[80, -20].astype(int)
    assert left[0] > left[2] + 100 and right[2] > right[0] + 100, f"colours survive demosaicing: {left}, {right}"


@pytest.mark.parametrize("with_preview", [True, False])
def test_raw_orientation_is_applied_once_on_both_paths(tmp_path: Path, with_preview: bool) -> None:
    preview = scene_pixels((300, 240)) if with_preview else None
    path = make_dng(tmp_path / "turned.dng", scene_pixels(), preview=preview, orientation=6)
    decoded = decode_image(path, draft_size=150)
    assert decoded.via == ("preview" if with_preview else "demosaic")
    assert (decoded.width, decoded.height) == (320, 480) and decoded.exif.orientation == 6
    assert decoded.image.height > decoded.image.width
    assert_red_on_top(decoded.image)


def test_a_dng_is_embedded_like_the_scene_it_holds(tmp_path: Path, embedder) -> None:
    scene = render_scene(sample_scene(np.random.default_rng(5), pairs=[("red", "circle")], n_objects=1), 256)
    pixels = np.asarray(scene)
    from_preview = decode_image(make_dng(tmp_path / "p.dng", pixels, preview=pixels), draft_size=embedder.image_size)
    from_sensor = decode_image(make_dng(tmp_path / "s.dng", pixels), draft_size=embedder.image_size // 2)
    original, preview_vector, sensor_vector = embedder.encode_images([scene, from_preview.image, from_sensor.image])
    assert from_preview.via == "preview" and float(original @ preview_vector) > 0.97
    assert from_sensor.via == "demosaic" and float(original @ sensor_vector) > 0.8, "demosaiced sensor data looks alike"


def test_every_raw_extension_is_discovered_and_named() -> None:
    expected = {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef"}
    assert expected <= RAW_EXTENSIONS
    assert RAW_EXTENSIONS <= DISCOVERED_EXTENSIONS, "folder discovery picks up every RAW extension we decode"
    for suffix in expected:
        fmt = format_for_extension(suffix.upper())
        assert fmt is not None and fmt.is_raw and fmt.label == suffix[1:].upper()


def tiff_with(tmp_path: Path, make: str, sub_ifds: bool) -> bytes:
    path = tmp_path / "t.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((8, 8), np.uint8), extratags=[(271, "s", 0, make, True)], subifds=1 if sub_ifds else 0)
        if sub_ifds:
            tif.write(np.zeros((16, 16), np.uint16))
    return path.read_bytes()


def test_raw_signatures_are_recognised_from_their_bytes(tmp_path: Path) -> None:
    cr3 = b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(200)
    assert sniff(cr3).mime == "image/x-canon-cr3" and sniff(cr3).is_image, "a CR3 is not an MP4 video"
    assert sniff(b"FUJIFILMCCD-RAW 0201FF383501" + bytes(100)).mime == "image/x-fuji-raf"
    assert sniff(b"IIRO\x08\x00\x00\x00" + bytes(100)).mime == "image/x-olympus-orf"
    assert sniff(b"IIRS\x08\x00\x00\x00" + bytes(100)).mime == "image/x-olympus-orf"
    assert sniff(b"IIU\x00\x08\x00\x00\x00" + bytes(100)).mime == "image/x-panasonic-rw2"
    assert sniff(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(100)).mime == "image/x-canon-cr2"
    assert classify_tiff(tiff_with(tmp_path, "NIKON CORPORATION", sub_ifds=True)) == "image/x-nikon-nef"
    assert classify_tiff(tiff_with(tmp_path, "SONY", sub_ifds=True)) == "image/x-sony-arw"
    assert classify_tiff(tiff_with(tmp_path, "PENTAX", sub_ifds=True)) == "image/x-pentax-pef"
    edited = tiff_with(tmp_path, "NIKON CORPORATION", sub_ifds=False)
    assert classify_tiff(edited) == "image/tiff", "an edited TIFF keeps the camera's Make but is no NEF"
    for brand, mime in ((b"heic", "image/heic"), (b"heix", "image/heic"), (b"avif", "image/avif")):
        assert sniff(b"\x00\x00\x00\x18ftyp" + brand + bytes(200)).mime == mime
    mif1 = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf" + bytes(100)
    assert sniff(mif1).mime == "image/heic", "a generic major brand names its codec among the compatible brands"


@pytest.mark.parametrize("suffix", sorted({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef"}))
def test_garbage_named_like_a_raw_file_fails_with_a_clear_reason(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"DSC_0001{suffix.upper()}"
    path.write_bytes(b"\x13\x37" + np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    label = suffix[1:].upper()
    with pytest.raises(MediaError, match=f"not an image: the content is data of an unknown type, not the {label} ") as caught:
        decode_image(path)
    assert "RAW) its name says" in str(caught.value)


@pytest.mark.parametrize(
    "suffix,header,label",
    [
        (".orf", b"IIRO\x08\x00\x00\x00", "ORF"),
        (".rw2", b"IIU\x00\x08\x00\x00\x00", "RW2"),
        (".raf", b"FUJIFILMCCD-RAW 0201FF383501", "RAF"),
        (".cr3", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom", "CR3"),
        (".cr2", b"II*\x00\x10\x00\x00\x00CR\x02\x00", "CR2"),
        (".nef", b"MM\x00*\x00\x00\x00\x08", "NEF"),
    ],
)
def test_a_raw_header_followed_by_garbage_fails_as_a_corrupt_file_of_that_format(
    tmp_path: Path, suffix: str, header: bytes, label: str
) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(header + np.random.default_rng(2).integers(0, 256, 8192, np.uint8).tobytes())
    with pytest.raises(MediaError, match=f"(corrupt|truncated).* {label} file"):
        decode_image(path)


def test_a_truncated_dng_fails_clearly_and_the_next_file_still_decodes(tmp_path: Path) -> None:
    whole = make_dng(tmp_path / "whole.dng", scene_pixels())
    cut = tmp_path / "cut.dng"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(MediaError, match="DNG"):
        decode_image(cut, draft_size=100)
    assert decode_image(whole, draft_size=100).via == "demosaic"


# -- EXIF from RAW containers and GPS ----------------------------------------------------------


def test_cr3_exif_boxes_give_date_camera_lens_and_position() -> None:
    ifd0 = Image.Exif()
    ifd0[0x010F], ifd0[0x0110] = "Canon", "Canon EOS R5"
    exif_ifd = Image.Exif()
    exif_ifd[0x9003], exif_ifd[0xA434] = "2022:01:02 03:04:05", "RF24-105mm F4 L IS USM"
    gps = Image.Exif()
    gps.update({1: "S", 2: (33.0, 51.0, 36.0), 3: "W", 4: (70.0, 39.0, 0.0)})

    def box(name: bytes, blob: bytes) -> bytes:
        body = blob.removeprefix(b"Exif\x00\x00")
        return (len(body) + 8).to_bytes(4, "big") + name + body

    cr3 = b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + box(b"CMT1", ifd0.tobytes())
    cr3 += box(b"CMT2", exif_ifd.tobytes()) + box(b"CMT4", gps.tobytes())
    exif = container_exif(cr3, format_for_extension(".cr3"))  # type: ignore[arg-type]
    assert exif.camera == "Canon EOS R5" and exif.lens == "RF24-105mm F4 L IS USM"
    assert exif.taken_at == pytest.approx(1641092645.0)
    assert exif.gps_lat == pytest.approx(-33.86) and exif.gps_lon == pytest.approx(-70.65)


@pytest.mark.parametrize(
    "lat,lon,expected",
    [
        (("N", (48.0, 51.0, 29.6)), ("E", (2.0, 17.0, 40.2)), (48.858222, 2.2945)),
        (("N", (48.0, 51.4933)), ("E", (2.0, 17.67)), (48.858222, 2.2945)),  # degrees and decimal minutes
        (("S", (0.0, 0.0, 0.0)), ("W", (0.0, 0.0, 0.0)), None),  # 0,0: what a chip without a fix writes
        (("N", (91.0, 0.0, 0.0)), ("E", (2.0, 0.0, 0.0)), None),  # no such latitude
        (("N", (48.0, 51.0, 29.6)), None, None),  # half a position is no position
    ],
)
def test_gps_becomes_decimal_degrees_or_nothing(lat, lon, expected) -> None:
    gps = Image.Exif()
    gps.update({1: lat[0], 2: lat[1]})
    if lon is not None:
        gps.update({3: lon[0], 4: lon[1]})
    exif = exif_from_parts(Image.Exif().tobytes(), None, gps.tobytes())
    if expected is None:
        assert exif.gps_lat is None and exif.gps_lon is None
    else:
        assert exif.gps_lat == pytest.approx(expected[0], abs=1e-5) and exif.gps_lon == pytest.approx(expected[1], abs=1e-5)
