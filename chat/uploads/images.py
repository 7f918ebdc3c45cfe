"""Pictures with Pillow: verify by decoding, re-encode without metadata (EXIF, GPS, XMP, comments), make a thumbnail. Pure."""
import io
import math
import warnings
from typing import NamedTuple, Optional

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

JPEG_QUALITY = 90
THUMB_JPEG_QUALITY = 82
THUMB_WEBP_QUALITY = 80
# What survives re-encoding besides the pixels: how to draw them (transparency, colour profile) and how to animate
# them. Everything else Pillow read (exif, xmp, comment, dpi, text chunks, photoshop/IPTC blocks) is dropped.
KEEP_INFO = ("transparency", "icc_profile", "duration", "loop", "background")
# Memory one decode may take, per pixel of max_image_pixels, measured with Pillow 13 (peak RSS over the decode,
# re-encode and thumbnail of a 49-megapixel picture): 4.2 for an upright RGB still, 8.2 for one the camera turned or
# with transparency (one more bitmap while it is turned or premultiplied), 10-12 for an animation (its frames are
# copied out before they are saved). The image_decode_concurrency help text and docs/hardening/uploads.md use it.
DECODE_BYTES_PER_PIXEL = 12
_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG", "MPO"), "gif": ("GIF",), "webp": ("WEBP",)}

# Pillow warns (between MAX_IMAGE_PIXELS and twice that) where _check_pixels refuses anyway: no log noise. Set once
# here, as warnings.catch_warnings() is not safe in the threads this runs in.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class Rejected(Exception):
    """The bytes claim to be a picture but are not a usable one; `message` says why, for the uploader. `too_large`:
    refused for its size (HTTP 413) rather than its content (422)."""

    def __init__(self, message, too_large=False):
        super().__init__(message)
        self.message = message
        self.too_large = too_large


class Picture(NamedTuple):
    data: bytes  # the re-encoded picture
    width: int
    height: int
    frames: int
    thumbnail: Optional[bytes]  # None when the picture already fits the thumbnail box
    thumb_type: Optional[str]


def process(data, kind, thumbnail_size, max_pixels, max_bytes=None):
    """Decode `data` (a kind named "png", "jpeg", "gif" or "webp"), re-encode it clean, and thumbnail it.

    The re-encoded picture is at most `max_bytes` (re-encoding can grow a file: a JPEG saved at quality 70 comes back
    larger at 90): JPEG and WebP are then saved at lower qualities, PNG at the highest compression; past that the
    picture is refused. So what is stored never exceeds the upload limit.

    CPU-heavy (a 12-megapixel JPEG takes a fraction of a second) but Pillow releases the GIL while it decodes,
    resamples and encodes: callers on the event loop run this in a thread.
    """
    label = kind.upper()
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow refuses (DecompressionBombError) beyond twice this while opening
    try:
        with Image.open(io.BytesIO(data)) as probe:
            _check_format(probe, kind, label)
            _check_pixels(probe, max_pixels, label)  # before any pixel is decoded
            probe.verify()  # structure and checksums (PNG CRCs), without decoding the pixels
        image = Image.open(io.BytesIO(data))
        _check_format(image, kind, label)
        frames = _check_pixels(image, max_pixels, label)
        image.load()  # decodes the pixels: a truncated or corrupt file fails here
        if frames > 1:
            encoded, first = _reencode_animation(image, kind)
        else:
            # Turned the way the camera meant, before the tag is dropped; in place, so an upright picture is not
            # copied (a copy is one more full-size bitmap: see DECODE_BYTES_PER_PIXEL).
            ImageOps.exif_transpose(image, in_place=True)
            first = image
            encoded = _reencode_still(first, kind)
            for smaller in SMALLER.get(kind, ()):
                if max_bytes is None or len(encoded) <= max_bytes:
                    break
                encoded = _reencode_still(first, kind, **smaller)
        if max_bytes is not None and len(encoded) > max_bytes:
            raise Rejected(f"without its metadata the {label} picture is still {len(encoded)} bytes, over the limit of {max_bytes}",
                           too_large=True)
    except Rejected:
        raise
    except Image.DecompressionBombError:
        raise Rejected(f"the {label} picture has too many pixels (at most {max_pixels:,})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as e:
        # Pillow reports damaged files with many exception types (OSError "image file is truncated", SyntaxError
        # "broken PNG file", ...): all mean the same to the uploader.
        raise Rejected(f"the file looks like a {label} picture but could not be decoded ({_short(e)})") from None
    width, height = first.size
    thumb, thumb_type = _thumbnail(first, kind, thumbnail_size)
    return Picture(encoded, width, height, frames, thumb, thumb_type)


def _short(error):
    text = str(error) or type(error).__name__
    return text[:120]


def _check_format(image, kind, label):
    if image.format not in _FORMATS[kind]:
        raise Rejected(f"the file starts like a {label} picture but Pillow reads it as {image.format or 'nothing known'}")


def _check_pixels(image, max_pixels, label):
    width, height = image.size
    frames = getattr(image, "n_frames", 1) or 1
    if width < 1 or height < 1:
        raise Rejected(f"the {label} picture has no pixels")
    if width * height * frames > max_pixels:
        what = f"{width}x{height}" + (f" x {frames} frames" if frames > 1 else "")
        raise Rejected(f"the {label} picture is too large: {what} pixels, at most {max_pixels:,} in all")
    return frames


def _clean_info(image):
    image.info = {k: v for k, v in image.info.items() if k in KEEP_INFO}
    return image


# Second tries when a re-encoded still comes out over max_bytes.
SMALLER = {
    "jpeg": ({"quality": 80}, {"quality": 70}),
    "webp": ({"quality": 80}, {"quality": 70}),
    "png": ({"compress_level": 9},),
}


def _reencode_still(image, kind, quality=JPEG_QUALITY, compress_level=6):
    image = _clean_info(image)
    icc = image.info.get("icc_profile")
    out = io.BytesIO()
    if kind == "jpeg":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        # No optimize=True: Pillow then encodes the whole picture in one call that holds the GIL (100 ms for 12
        # megapixels, a stall of the whole chat); without it the encoder works in chunks and lets the loop run.
        image.save(out, "JPEG", quality=quality, icc_profile=icc)
    elif kind == "png":
        image.save(out, "PNG", compress_level=compress_level, icc_profile=icc)
    elif kind == "gif":
        image.save(out, "GIF")
    else:  # webp
        image.save(out, "WEBP", quality=quality, icc_profile=icc or "")
    return out.getvalue()


def _reencode_animation(image, kind):
    """Every frame copied out of the source (so no per-frame metadata rides along), saved as one animation."""
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(frame.info.get("duration", 100))
        copy = frame.copy()
        copy.info = {}
        frames.append(copy)
    first = frames[0]
    loop = image.info.get("loop", 0)
    out = io.BytesIO()
    if kind == "gif":
        first.save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop, disposal=2)
    else:  # webp
        first.save(out, "WEBP", save_all=True, append_images=frames[1:], duration=durations, loop=loop, quality=JPEG_QUALITY)
    return out.getvalue(), first


def _thumbnail(image, kind, box):
    """A picture fitting in box x box pixels (JPEG for photos, WebP keeping transparency for the rest), or (None, None)
    when the picture fits already: the page then shows the picture itself."""
    if image.width <= box and image.height <= box:
        return None, None
    icc = image.info.get("icc_profile")
    # resize() with a reducing gap first shrinks by whole factors into a small new bitmap: no full-size copy.
    thumb = image.resize(_fit(image.width, image.height, box), Image.Resampling.LANCZOS, reducing_gap=3.0)
    thumb.info = {}
    out = io.BytesIO()
    if kind == "jpeg":
        if thumb.mode not in ("RGB", "L"):
            thumb = thumb.convert("RGB")
        thumb.save(out, "JPEG", quality=THUMB_JPEG_QUALITY, optimize=True, icc_profile=icc)
        return out.getvalue(), "image/jpeg"
    alpha = thumb.mode in ("RGBA", "LA", "PA") or (thumb.mode == "P" and "transparency" in image.info)
    thumb = thumb.convert("RGBA" if alpha else "RGB")
    thumb.save(out, "WEBP", quality=THUMB_WEBP_QUALITY, icc_profile=icc or "")
    return out.getvalue(), "image/webp"


def _fit(width, height, box):
    """The size Image.thumbnail((box, box)) gives a width x height picture (aspect kept, each side at least 1)."""
    aspect = width / height

    def nearest(number, key):
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if aspect <= 1:
        return nearest(box * aspect, lambda n: abs(aspect - n / box)), box
    return box, nearest(box / aspect, lambda n: 0 if n == 0 else abs(aspect - box / n))
