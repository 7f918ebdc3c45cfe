"""Content sniffing (chat/uploads/filetypes.py) and picture re-encoding (chat/uploads/images.py), without a server."""
import io

import pytest
from PIL import Image

from tests.support import filesamples as samples
from chat.uploads import filetypes
from chat.uploads import images
from chat.config import Settings, load_settings
from chat.uploads.filetypes import KINDS

ALL = list(KINDS.values())


@pytest.mark.parametrize(
    "data, kind",
    [
        (samples.png(40, 30), "png"),
        (samples.jpeg_with_gps(40, 30), "jpeg"),
        (samples.animated_gif(40, 30), "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (samples.pdf(), "pdf"),
        (samples.zip_archive(), "zip"),
        ("plain text, ünïcode 😀\nline two\n".encode(), "text"),
        (b"\xef\xbb\xbfwith a BOM", "text"),
        (b"a < b and b > c", "text"),
        (b"<<not markup>>", "text"),
    ],
)
def test_sniff_by_content(data, kind):
    assert filetypes.sniff(data).name == kind


@pytest.mark.parametrize(
    "data",
    [
        samples.HTML_PAGE,
        samples.SVG_WITH_SCRIPT,
        samples.BARE_SVG,
        b"  \n<html>",
        b"\xef\xbb\xbf<!doctype html><p>hi",
        b"<script>alert(1)</script>",
        b"<!-- comment --><b>bold</b>",
        b"<?xml version='1.0'?><x/>",
        samples.ELF_BINARY,
        b"text with a \x00 NUL",
        b"\xff\xfe not utf-8 \xc3\x28",
        b"",
    ],
    ids=["html", "svg-xml", "svg", "html-space", "html-bom", "script", "comment", "xml", "elf", "nul", "bad-utf8", "empty"],
)
def test_markup_binary_and_empty_are_none_of_ours(data):
    assert filetypes.sniff(data) is None


def test_classify_explains_refusals():
    allowed = filetypes.parse_kinds("png,jpeg,text")
    assert filetypes.classify(b"hello", allowed).name == "text"
    with pytest.raises(filetypes.Refused, match="HTML, SVG and XML documents are not accepted"):
        filetypes.classify(samples.SVG_WITH_SCRIPT, allowed)
    with pytest.raises(filetypes.Refused, match="pdf files are not accepted here; allowed: png, jpeg, text"):
        filetypes.classify(samples.pdf(), allowed)
    with pytest.raises(filetypes.Refused, match="not accepted; allowed: png, jpeg, text"):
        filetypes.classify(samples.ELF_BINARY, allowed)
    with pytest.raises(filetypes.Refused, match="empty"):
        filetypes.classify(b"", allowed)
    with pytest.raises(filetypes.Refused, match=r"allowed: none \(uploads are off\)"):
        filetypes.classify(b"hello", [])


@pytest.mark.parametrize(
    "raw, kind, name",
    [
        ("cat.png", "png", "cat.png"),
        ("C:\\Users\\me\\Pictures\\cat.PNG", "png", "cat.PNG"),
        ("../../etc/passwd", "text", "passwd.txt"),
        ("page.html", "text", "page.html.txt"),
        ("run.js", "text", "run.js.txt"),
        ("notes.md", "text", "notes.md"),
        ("photo.txt", "jpeg", "photo.txt.jpg"),
        ("a\u202egnp.exe", "png", "a gnp.exe.png"),  # right-to-left override: no hidden extension tricks
        ("line\nbreak\r\t.pdf", "pdf", "line break .pdf"),
        ("", "pdf", "file.pdf"),
        ("...", "zip", "file.zip"),
        ("report.docx", "zip", "report.docx"),
        ("x" * 300 + ".pdf", "pdf", "x" * 196 + ".pdf"),
    ],
)
def test_clean_name(raw, kind, name):
    assert filetypes.clean_name(raw, KINDS[kind]) == name


def test_content_disposition_is_safe_for_any_name():
    assert filetypes.content_disposition("inline", "cat.png") == 'inline; filename="cat.png"'
    value = filetypes.content_disposition("attachment", 'ré"sumé;\u00a0x.pdf')
    assert value.startswith('attachment; filename="re_sume_ x.pdf"; filename*=UTF-8\'\'')
    assert '"' not in value.split("filename*=")[1] and ";" not in value.split("filename*=")[1]


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (123456, "120.6 KiB"), (5 * 2**20, "5 MiB")])
def test_human_size(size, text):
    assert filetypes.human_size(size) == text


def test_accept_list_follows_the_allowed_kinds():
    assert filetypes.accept_list(filetypes.parse_kinds("png,pdf")) == "image/png,application/pdf,.pdf"


def test_upload_settings_are_validated():
    assert Settings().validate().max_upload_size == 5 * 1024 * 1024
    assert load_settings(environ={"CHAT_UPLOAD_TYPES": "png, text"}).upload_types == "png, text"
    assert load_settings(["--max-upload-size", "1000"], environ={}).max_upload_size == 1000
    for bad in ({"upload_types": "png,exe"}, {"max_upload_size": 0}, {"thumbnail_size": 4}, {"max_image_pixels": 0},
                {"upload_commit_timeout": 0}):
        with pytest.raises(ValueError):
            load_settings(environ={}, **bad)


# ---- pictures ---------------------------------------------------------------------------------


def process(data, kind, box=320, max_pixels=50_000_000, max_bytes=None):
    return images.process(data, kind, box, max_pixels, max_bytes)


def test_jpeg_loses_gps_exif_and_comment_and_is_turned_upright():
    data = samples.jpeg_with_gps(1200, 800, orientation=6)
    assert samples.has_location_or_camera_data(data)
    result = process(data, "jpeg")
    assert not samples.has_location_or_camera_data(result.data)
    assert not samples.has_location_or_camera_data(result.thumbnail)
    out = Image.open(io.BytesIO(result.data))
    assert out.format == "JPEG" and out.size == (800, 1200) == (result.width, result.height)  # orientation applied
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert result.thumb_type == "image/jpeg" and thumb.format == "JPEG" and thumb.size == (213, 320)


def test_png_is_reencoded_with_a_webp_thumbnail():
    result = process(samples.png(800, 600), "png")
    assert Image.open(io.BytesIO(result.data)).format == "PNG"
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert result.thumb_type == "image/webp" and thumb.size == (320, 240)


def test_small_picture_gets_no_thumbnail():
    result = process(samples.png(100, 80), "png")
    assert result.thumbnail is None and result.thumb_type is None and (result.width, result.height) == (100, 80)


def test_animation_keeps_its_frames_but_not_its_comment():
    result = process(samples.animated_gif(400, 300, frames=4), "gif")
    out = Image.open(io.BytesIO(result.data))
    assert result.frames == 4 and out.n_frames == 4 and "comment" not in out.info
    assert b"gif comment" not in result.data


@pytest.mark.parametrize(
    "data, kind, message",
    [
        (samples.truncated_png(), "png", "looks like a PNG picture but could not be decoded"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "png", "could not be decoded"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "jpeg", "could not be decoded"),
        (samples.png(40, 30), "jpeg", "starts like a JPEG picture but Pillow reads it as PNG"),
    ],
    ids=["truncated", "png-garbage", "jpeg-garbage", "wrong-format"],
)
def test_broken_pictures_are_rejected(data, kind, message):
    with pytest.raises(images.Rejected, match=message):
        process(data, kind)


def test_too_many_pixels_are_rejected_before_decoding():
    with pytest.raises(images.Rejected, match="too many pixels|too large"):
        process(samples.png(800, 600), "png", max_pixels=100_000)
    with pytest.raises(images.Rejected, match="4 frames"):
        process(samples.animated_gif(400, 300, frames=4), "gif", max_pixels=400 * 300 * 3)


def test_a_picture_that_grows_when_reencoded_is_saved_smaller_or_refused():
    noisy = Image.effect_noise((600, 400), 80).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "JPEG", quality=60)
    original = out.getvalue()
    full = process(original, "jpeg").data
    assert len(full) > len(original)  # quality 90 costs more bytes than 60
    fitted = process(original, "jpeg", max_bytes=len(full) - 1)  # saved again at a lower quality
    assert len(fitted.data) < len(full) and not samples.has_location_or_camera_data(fitted.data)
    with pytest.raises(images.Rejected, match="over the limit") as refused:
        process(original, "jpeg", max_bytes=1000)
    assert refused.value.too_large
