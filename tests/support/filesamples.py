"""Files the attachment tests upload, made here with Pillow: pictures (one with GPS EXIF), text, and hostile ones."""
import io
import zipfile

from PIL import ExifTags, Image, ImageDraw

GPS_LATITUDE = (48.0, 51.0, 29.0)
GPS_LONGITUDE = (2.0, 17.0, 40.0)
CAMERA_MAKE = "TestCam Industries"
JPEG_COMMENT = b"shot at home, 12 Quiet Lane"


def picture(width=800, height=600, seed=0):
    """An RGB picture with shapes on a gradient (compresses like a photo, not like noise)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(12):
        x, y = (i * 97 + seed * 31) % width, (i * 53 + seed * 17) % height
        draw.ellipse((x, y, x + width // 6, y + height // 6), fill=((i * 40 + seed) % 256, (i * 90) % 256, (200 - i * 15) % 256))
    return image


def png(width=800, height=600, seed=0):
    out = io.BytesIO()
    picture(width, height, seed).save(out, "PNG")
    return out.getvalue()


def jpeg_with_gps(width=1200, height=800, orientation=6):
    """A JPEG carrying what a phone camera writes: GPS position, camera make, orientation, a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA_MAKE
    exif[ExifTags.Base.Orientation] = orientation  # 6: the camera was turned; shown rotated 90 degrees clockwise
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = GPS_LONGITUDE
    out = io.BytesIO()
    picture(width, height).save(out, "JPEG", quality=90, exif=exif, comment=JPEG_COMMENT)
    data = out.getvalue()
    check = Image.open(io.BytesIO(data))  # the sample really carries it
    assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == GPS_LATITUDE
    return data


def has_location_or_camera_data(data):
    """True if a picture's bytes still hold EXIF (any tag, GPS included), the camera make or the comment."""
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return bool(
        len(exif)
        or exif.get_ifd(ExifTags.IFD.GPSInfo)
        or "exif" in image.info
        or "comment" in image.info
        or "xmp" in image.info
        or b"Exif\x00\x00" in data
        or CAMERA_MAKE.encode() in data
        or JPEG_COMMENT in data
    )


def truncated_png():
    data = png(400, 300)
    return data[: len(data) // 2]


HTML_PAGE = b"<!DOCTYPE html>\n<html><body><script>alert(document.cookie)</script></body></html>\n"
SVG_WITH_SCRIPT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)">'
    b"<script>alert(document.domain)</script><rect width='10' height='10'/></svg>\n"
)
BARE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
ELF_BINARY = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4


def pdf():
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def zip_archive():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        # a fixed date: the bytes are a test id, and xdist's workers must collect the same ids
        z.writestr(zipfile.ZipInfo("notes.txt", date_time=(2026, 1, 1, 0, 0, 0)), "hello from the archive\n")
    return out.getvalue()


def animated_gif(width=400, height=300, frames=4):
    images = []
    for i in range(frames):
        frame = Image.new("RGB", (width, height), (i * 60, 30, 200 - i * 40))
        ImageDraw.Draw(frame).rectangle((i * 40, 10, i * 40 + 60, 70), fill=(255, 255, 0))
        images.append(frame)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=120, loop=0, comment=b"gif comment")
    return out.getvalue()
