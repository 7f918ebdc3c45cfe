"""What a file is, judged by its bytes and never by its name: the allow-list of kinds, magic numbers, safe download names."""
import re
import unicodedata
from typing import NamedTuple
from urllib.parse import quote


class Kind(NamedTuple):
    name: str  # as in the upload_types setting
    content_type: str  # what /files/<id> is served as
    picture: bool  # verified by decoding (chat/uploads/images.py), re-encoded, shown inline with a thumbnail
    extensions: tuple  # file name endings that fit this kind; the first is added to a name that fits none
    accept: tuple  # what the page's <input type=file accept=...> lists for it


KINDS = {
    k.name: k
    for k in (
        Kind("png", "image/png", True, (".png",), ("image/png",)),
        Kind("jpeg", "image/jpeg", True, (".jpg", ".jpeg", ".jpe", ".jfif"), ("image/jpeg",)),
        Kind("gif", "image/gif", True, (".gif",), ("image/gif",)),
        Kind("webp", "image/webp", True, (".webp",), ("image/webp",)),
        Kind("pdf", "application/pdf", False, (".pdf",), ("application/pdf", ".pdf")),
        # Plain text only; a text file whose name says otherwise (page.html, run.js) is offered for download as
        # page.html.txt, so opening the download never runs it.
        Kind(
            "text",
            "text/plain; charset=utf-8",
            False,
            (".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".log", ".json", ".yaml", ".yml", ".toml", ".ini",
             ".cfg", ".conf", ".py", ".c", ".h", ".rs", ".go", ".java", ".sql", ".diff", ".patch"),
            ("text/plain", ".txt", ".md", ".csv", ".log", ".json"),
        ),
        Kind(
            "zip",
            "application/zip",
            False,
            (".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".epub"),
            ("application/zip", ".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp"),
        ),
    )
}

MAX_NAME_LENGTH = 200  # characters of a file name kept (longer ones are shortened, keeping the extension)

# Text that a browser would take for markup (the WHATWG MIME sniffing standard's HTML patterns, plus SVG and XML):
# refused, so an HTML or SVG page can never be uploaded, whatever its name says.
_MARKUP = re.compile(
    rb"\s*(?:<!doctype\s+html|<html|<head|<body|<script|<iframe|<h1|<div|<font|<table|<a|<style|<title|<b|<br|<p"
    rb"|<!--|<\?xml|<svg|<math|<object|<embed|<meta|<link|<form|<img)(?:[\s>/]|$)",
    re.IGNORECASE,
)


class Refused(Exception):
    """The upload is not of an allowed kind; `message` says why, for the uploader."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def parse_kinds(setting):
    """The allowed kinds from the upload_types setting (already validated), in order."""
    return [KINDS[k.strip().lower()] for k in setting.split(",") if k.strip()]


def sniff(data):
    """The Kind the bytes are, or None when they are none of ours (or markup posing as text)."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return KINDS["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return KINDS["jpeg"]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return KINDS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return KINDS["webp"]
    if head.startswith(b"%PDF-"):
        return KINDS["pdf"]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return KINDS["zip"]
    if is_plain_text(data):
        return KINDS["text"]
    return None


def is_plain_text(data):
    """UTF-8 (an optional BOM) without NUL bytes, and not markup a browser would render."""
    if not data or b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    return _MARKUP.match(body[:1024]) is None


def classify(data, allowed):
    """The Kind of `data` if it is one of `allowed` (Kinds); raises Refused with a reason otherwise."""
    if not data:
        raise Refused("the file is empty")
    kind = sniff(data)
    if kind is None:
        if is_markup(data):
            raise Refused("HTML, SVG and XML documents are not accepted")
        raise Refused(f"this kind of file is not accepted; allowed: {describe(allowed)}")
    if kind not in allowed:
        raise Refused(f"{kind.name} files are not accepted here; allowed: {describe(allowed)}")
    return kind


def is_markup(data):
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    return _MARKUP.match(body[:1024]) is not None


def describe(allowed):
    return ", ".join(k.name for k in allowed) or "none (uploads are off)"


def accept_list(allowed):
    """The value of the page's file input `accept` attribute."""
    seen = []
    for kind in allowed:
        for item in kind.accept:
            if item not in seen:
                seen.append(item)
    return ",".join(seen)


def clean_name(raw, kind):
    """A file name safe to show and to offer for download: no path, no control or format characters, bounded length,
    and an extension that fits the content (one is added when the name's does not)."""
    name = str(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in name)
    name = " ".join(name.split()).strip(" .")
    if not name:
        name = "file"
    lower = name.lower()
    if not lower.endswith(kind.extensions):
        name += kind.extensions[0]
    if len(name) > MAX_NAME_LENGTH:
        _, dot, ext = name.rpartition(".")
        ext = dot + ext if dot and len(ext) <= 10 else ""
        name = name[: MAX_NAME_LENGTH - len(ext)].rstrip(" .") + ext
    return name


def human_size(size):
    """1536 -> "1.5 KiB", 5242880 -> "5 MiB" (binary units, one decimal unless whole)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024.0
        if value < 1023.95 or unit == "GiB":
            text = f"{value:.1f}"
            return f"{text[:-2] if text.endswith('.0') else text} {unit}"
    return f"{size} B"  # not reached


def content_disposition(disposition, name):
    """`attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266), safe for any name."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'[^A-Za-z0-9 ._()+,-]', "_", ascii_name).strip() or "file"
    value = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value

