"""Files in the chat: POST /files (multipart upload by a signed-in user or an API token) posts a message carrying the
file; GET /files/<id> and /files/<id>/thumb serve it to whoever may read that conversation; DELETE /files/<id> deletes
it (chat/uploads/deletion.py says who may, and what becomes of its message)."""
import hashlib
import logging
import math
import time

import gevent
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask_wtf.csrf import validate_csrf
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from wtforms import ValidationError

from chat.uploads import filetypes
from chat.uploads import images
from chat import security
from chat.accounts.routes import signed_in_user
from chat.accounts.credentials import TOKEN
from chat.accounts.admission import bearer_token
from chat.messaging.protocol import MAX_ID, attachment_object, iso_timestamp
from chat.names import NAME_RULE, normalize_name
from chat.records import AttachmentRef
from chat.responses import json_error
from chat.store import StoreUnavailable
from chat.store.attachments import DAY_SECONDS, AttachmentQueries, OverQuota, Quotas
from chat.uploads.deletion import FileDeleter
from chat.uploads.limits import DecodeSlots, UploadRate
from chat.messaging.writer import BufferFull

log = logging.getLogger("chat.uploads")

bp = Blueprint("uploads", __name__)

# Multipart framing (boundaries, part headers) and the small fields ("to", "csrf_token") around the file: the body may
# be this much larger than max_upload_size. The file itself is then held to max_upload_size exactly.
MULTIPART_SLACK = 64 * 1024
MAX_FORM_PARTS = 8
# The multipart parser reads a body that has already arrived without ever waiting, so it would hold the event loop
# for the whole file (12 ms for 5 MiB): it lets the chat run every this many bytes.
YIELD_EVERY = 256 * 1024
YEAR = 365 * 86400
# A served file may run nothing, load nothing and be framed by nobody; an image opened in a tab still shows
# (img-src 'self' for the image document, inline style for the browser's own centring).
FILE_CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
_ID = f"<int(max={MAX_ID}):attachment_id>"


class Uploads:
    """Per-app state: the settings, the queries, the allowed kinds, the decode slots and the upload limits."""

    def __init__(self, settings, store, service):
        self.settings = settings
        self.queries = AttachmentQueries(store)
        self.deleter = FileDeleter(service, self.queries, settings.upload_commit_timeout)
        self.allowed = filetypes.parse_kinds(settings.upload_types)
        self.accept = filetypes.accept_list(self.allowed)
        self.image_slots = DecodeSlots(settings.image_decode_concurrency, settings.image_decode_wait)
        self.rate = UploadRate(settings.upload_rate, settings.upload_burst)
        self.quotas = Quotas(settings.upload_quota_per_day, settings.upload_total_bytes)
        self.stored = 0  # files stored (read by chat/metrics)
        self.stored_bytes = 0  # their bytes, as stored (a picture re-encoded)
        self.rate_limited = 0  # uploads refused by upload_rate


def init_app(app, settings, store, uploads):
    app.extensions["chat.uploads"] = uploads
    app.register_blueprint(bp)
    # Flask-WTF's global check would parse the whole multipart body before the view sets its size limits: the view
    # checks the CSRF token itself (session uploads only; a token is no ambient credential).
    security.csrf.exempt(upload)
    security.csrf.exempt(delete)  # checks the Origin and the CSRF token itself (session only), answering in JSON
    _check_packet_size(app.extensions["chat.uploads"].queries, settings)


def _check_packet_size(queries, settings):
    """On MySQL an upload is one INSERT: warn when max_allowed_packet cannot carry the largest one."""
    try:
        packet = queries.max_packet()
    except StoreUnavailable:
        return
    # PyMySQL sends bytes as hex (twice their size); the stored file is at most max_upload_size, its thumbnail small.
    needed = 2 * (settings.max_upload_size + 1024 * 1024)
    if packet is not None and packet < needed:
        log.warning(
            "MySQL max_allowed_packet is %d bytes: uploads near max_upload_size (%d) may fail; set it to at least %d",
            packet, settings.max_upload_size, needed,
        )


def _uploads():
    return current_app.extensions["chat.uploads"]


def _identify():
    """(user or None, how, refusal or None): an API token (Authorization: Bearer or ?token=) or the browser's sign-in.
    A name in the form is never believed."""
    token = bearer_token()
    if token is not None:
        try:
            found = current_app.extensions["chat.auth"].resolve(token, TOKEN)
        except StoreUnavailable:
            return None, None, json_error(503, "the account store is not answering; try again")
        if found is None:
            return None, None, json_error(401, "the token is invalid, expired or revoked", bearer=True)
        return found[0], "token", None
    user = signed_in_user()
    return (user, "session", None) if user else (None, None, None)


@bp.app_context_processor
def _page_context():
    up = current_app.extensions.get("chat.uploads")
    if up is None:
        return {}
    return {"upload_accept": up.accept, "max_upload_size": up.settings.max_upload_size, "uploads_enabled": bool(up.allowed)}


# ---- upload ----------------------------------------------------------------------------------------


def _too_large(limit):
    return json_error(413, f"the file is too large: at most {filetypes.human_size(limit)} ({limit} bytes)", max_size=limit)


@bp.route("/files", methods=["POST"])
def upload():
    """multipart/form-data: "file" (one file), optionally "to" (a user name: a direct message) and, with a browser
    session, "csrf_token" (or the X-CSRFToken header). 201 {"id", "ts", "msg", "url", "attachment"} once the message
    carrying the file is committed."""
    up = _uploads()
    settings = up.settings
    service = current_app.extensions["chat"]
    user, how, refusal = _identify()
    if refusal is not None:
        return refusal
    if user is None:
        return json_error(
            401, "uploads need an account: sign in, or send an API token as Authorization: Bearer TOKEN (guests cannot upload)",
            bearer=True,
        )
    refusal = _within_limits(up, user)
    if refusal is not None:
        return refusal
    received, refusal = _receive(settings.max_upload_size, how)
    if refusal is not None:
        return refusal
    form, filename, data = received
    recipient, refusal = _recipient(service, user, form.get("to"))
    if refusal is not None:
        return refusal
    try:
        kind = filetypes.classify(data, up.allowed)
    except filetypes.Refused as e:
        return json_error(415, e.message, allowed=[k.name for k in up.allowed])
    thumb = thumb_type = None
    threadpool = gevent.get_hub().threadpool  # Pillow and hashlib release the GIL: the chat runs on meanwhile
    if kind.picture:
        # Each decode may take max_image_pixels x images.DECODE_BYTES_PER_PIXEL: at most image_decode_concurrency at
        # once, the rest wait their turn for a while, then are told when to try again.
        if not up.image_slots.acquire():
            return json_error(
                503, "the server is busy decoding other pictures; try again shortly", wait=settings.image_decode_wait,
                limit="image_decode_concurrency",
            )
        try:
            picture = threadpool.apply(
                images.process,
                (data, kind.name, settings.thumbnail_size, settings.max_image_pixels, settings.max_upload_size),
            )
        except images.Rejected as e:
            return json_error(413 if e.too_large else 422, e.message)
        finally:
            up.image_slots.release()
        data, thumb, thumb_type = picture.data, picture.thumbnail, picture.thumb_type
    name = filetypes.clean_name(filename, kind)
    digest = threadpool.apply(_sha256, (data,))
    try:
        attachment_id = up.queries.insert(user, recipient, name, kind.content_type, data, digest, thumb, thumb_type, up.quotas)
    except OverQuota as e:
        return _over_quota(e.limit, e.allowed, e.used)
    except StoreUnavailable as e:
        log.warning("could not store an upload from %s: %s", user, e)
        return json_error(503, "the server cannot store files right now; try again")
    up.stored += 1
    up.stored_bytes += len(data)
    return _post(service, user, recipient, AttachmentRef(attachment_id, name, kind.content_type, len(data), thumb is not None))


def _within_limits(up, user):
    """A refusal when `user` may not upload now (rate, or a quota already used up), before a byte of the body is read;
    else None. The quotas are checked again, exactly and atomically, when the file is stored."""
    wait = up.rate.take(user)
    if wait > 0:
        up.rate_limited += 1
        per_minute = up.settings.upload_rate
        return json_error(
            429, f"too many uploads: at most {per_minute:g} a minute ({up.settings.upload_burst} at once); try again in "
            f"{math.ceil(wait)} s", wait=wait, limit="upload_rate",
        )
    try:
        today, total = up.queries.usage(user)
    except StoreUnavailable:
        return json_error(503, "the server cannot store files right now; try again")
    # The body's declared length includes the multipart framing: only what is surely the file counts here.
    declared = max(1, (request.content_length or 0) - MULTIPART_SLACK)
    if total + declared > up.quotas.total:
        return _over_quota("upload_total_bytes", up.quotas.total, total)
    if today + declared > up.quotas.per_day:
        return _over_quota("upload_quota_per_day", up.quotas.per_day, today)
    return None


def _over_quota(limit, allowed, used):
    """413 for a user's day (with Retry-After: the next UTC midnight), 507 for the server's total."""
    if limit == "upload_total_bytes":
        return json_error(
            507, f"the server's storage for files is full ({filetypes.human_size(allowed)}); no more uploads for now",
            limit=limit, allowed=allowed, used=used,
        )
    return json_error(
        413, f"your uploads today would go past {filetypes.human_size(allowed)} ({allowed} bytes, "
        f"{filetypes.human_size(used)} used); more can be sent after 00:00 UTC",
        wait=DAY_SECONDS - time.time() % DAY_SECONDS, limit=limit, allowed=allowed, used=used,
    )


def _receive(limit, how):
    """((form, file name, bytes), None) for a body within the limits and, for a browser session, with its CSRF token;
    else (None, refusal)."""
    body_limit = limit + MULTIPART_SLACK
    # Before a byte of the body is read: a declared length over the limit is refused at once (curl, which asks
    # "Expect: 100-continue" for large bodies, then never sends it).
    if request.content_length is not None and request.content_length > body_limit:
        return None, _too_large(limit)
    csrf_checked = False
    if how == "session":
        header = request.headers.get("X-CSRFToken")
        if header is not None:
            if not _csrf_ok(header):
                return None, json_error(400, "the CSRF token is missing or invalid: reload the page and try again")
            csrf_checked = True
    # Werkzeug enforces these while it streams the body: a declared Content-Length over the limit raises at once,
    # and a chunked body (no length) is counted as it arrives (gevent's Input de-chunks and ends the stream, which
    # is what wsgi.input_terminated tells Werkzeug; without it Werkzeug would read a chunked body as empty).
    # (max_form_memory_size, for the fields that are not files, stays Flask's 500 kB: Werkzeug's multipart decoder
    # counts its whole read buffer against it, so a tighter value refuses ordinary binary files.)
    request.max_content_length = body_limit
    request.max_form_parts = MAX_FORM_PARTS
    if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        request.environ["wsgi.input_terminated"] = True
    request.environ["wsgi.input"] = _CooperativeInput(request.environ["wsgi.input"])
    try:
        form = request.form
        files = request.files.getlist("file")
    except RequestEntityTooLarge:
        return None, _too_large(limit)
    except ClientDisconnected:
        return None, json_error(400, "the upload ended early")
    if how == "session" and not csrf_checked and not _csrf_ok(form.get("csrf_token")):
        return None, json_error(400, "the CSRF token is missing or invalid: reload the page and try again")
    if len(files) != 1:
        return None, json_error(400, 'send exactly one file as the multipart/form-data field "file"')
    data = files[0].stream.read(limit + 1)
    if len(data) > limit:
        return None, _too_large(limit)
    return (form, files[0].filename, data), None


def _post(service, user, recipient, ref):
    """Post the message carrying a stored file; 201 once it is committed (503 if that takes upload_commit_timeout)."""
    # Never from the request (its Host or X-Forwarded-Host header are the client's to choose, and this text goes to
    # everyone): the configured public address, or a path on this server, which the page and terminals resolve.
    url = current_app.extensions["chat.uploads"].settings.public_url + url_for("uploads.serve", attachment_id=ref.id)
    body = f"[{'image' if ref.image else 'file'}] {ref.name} ({filetypes.human_size(ref.size)}) {url}"
    try:
        upload = service.post_attachment(user, recipient, ref, body)
    except (BufferFull, StoreUnavailable):
        return json_error(503, "the server cannot store messages right now; the file was not posted")
    result = {"msg": body, "url": url, "attachment": attachment_object(ref)}
    if recipient is not None:
        result["to"] = recipient
    if not upload.settled.wait(service.settings.upload_commit_timeout):
        # Waiting in the write buffer: it is stored when the database answers again (with several processes its id
        # is assigned then; with one, it already has one and was delivered live).
        if upload.record.id is not None:
            result["id"] = upload.record.id
        return json_error(503, "the message carrying the file is not confirmed yet (the database is slow or down)", **result)
    if upload.refused:
        return json_error(500, "the database refused the message carrying the file; it was not posted")
    record = upload.record
    log.info("%s shared %s (%s, %d bytes) as file %d in message %d", user, ref.name, ref.type, ref.size, ref.id, record.id)
    result["id"] = record.id
    result["ts"] = iso_timestamp(record.created_ms)
    response = jsonify(result)
    response.status_code = 201
    response.headers["Location"] = url
    return response


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


class _CooperativeInput:
    """The request body, read as usual, with a yield to other greenlets every YIELD_EVERY bytes."""

    def __init__(self, stream):
        self._stream = stream
        self._count = 0

    def _counted(self, data):
        self._count += len(data)
        if self._count >= YIELD_EVERY:
            self._count = 0
            gevent.sleep(0)
        return data

    def read(self, size=-1):
        return self._counted(self._stream.read(size))

    def readline(self, size=-1):
        return self._counted(self._stream.readline(size))


def _csrf_ok(token):
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True


def _recipient(service, user, raw):
    """(None, None) for the group, (name, None) for a valid addressee, or (None, refusal)."""
    if raw is None or raw == "":
        return None, None
    settings = service.settings
    name = normalize_name(raw, settings.max_name_length)
    if name is None:
        return None, json_error(400, f'"to" is not a valid name: 1-{settings.max_name_length} {NAME_RULE}')
    if name == user:
        return None, json_error(422, "you cannot send a file to yourself")
    try:
        known = service.is_known(name)
        state = current_app.extensions["chat.auth"].account_state(name) if known else None
    except StoreUnavailable:
        return None, json_error(503, "the account store is not answering; try again")
    if not known:
        return None, json_error(422, f"no user named {name!r} has ever connected")
    if state != "active":
        # Files in a one-to-one conversation are served only to its two signed-in users: a guest (or a bot) could
        # never open it.
        return None, json_error(422, f"{name} has no account, so could not open the file: share it with everyone instead")
    return name, None


# ---- serving ---------------------------------------------------------------------------------------


@bp.route(f"/files/{_ID}")
def serve(attachment_id):
    return _serve(attachment_id, thumbnail=False)


@bp.route(f"/files/{_ID}/thumb")
def serve_thumbnail(attachment_id):
    return _serve(attachment_id, thumbnail=True)


def _not_found():
    return json_error(404, "no such file")


def _visible(meta, viewer):
    """Whether `viewer` may see the file `meta` (a group file: anyone who may read the group; a direct one: its two
    users, unless it was an earlier holder's of the viewer's name). Raises StoreUnavailable."""
    if meta.recipient is None:
        return True
    if viewer not in (meta.uploader, meta.recipient):
        return False
    return meta.id > current_app.extensions["chat"].store.name_floor(viewer)[1]  # chat/accounts/holds.py


def _serve(attachment_id, thumbnail):
    """A group file to whoever may read the group; a direct one to its two users only (anyone else: 404)."""
    up = _uploads()
    settings = up.settings
    viewer, _, refusal = _identify()
    if refusal is not None:
        return refusal
    if viewer is None and not settings.allow_guests:
        return json_error(401, "sign in, or send an API token as Authorization: Bearer TOKEN", bearer=True)
    try:
        meta = up.queries.meta(attachment_id)
    except StoreUnavailable:
        return json_error(503, "the file store is not answering; try again")
    try:
        if meta is None or not _visible(meta, viewer):
            return _not_found()
    except StoreUnavailable:
        return json_error(503, "the file store is not answering; try again")
    if meta.deleted_ms is not None:
        return json_error(410, "this file was deleted")
    if thumbnail and meta.thumb_type is None:
        return _not_found()
    etag = meta.sha256 + ("-thumb" if thumbnail else "")
    # Contents never change under an id: cache for a year. Shared caches only for what anyone may read.
    public = meta.recipient is None and settings.allow_guests
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": f"{'public' if public else 'private'}, max-age={YEAR}, immutable",
        "Content-Security-Policy": FILE_CONTENT_SECURITY_POLICY,
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    try:
        data = up.queries.data(attachment_id, thumbnail=thumbnail)
    except StoreUnavailable:
        return json_error(503, "the file store is not answering; try again")
    if data is None:
        return _not_found()
    picture = meta.content_type.startswith("image/")  # only verified, re-encoded pictures are stored as image/*
    headers["Content-Disposition"] = filetypes.content_disposition("inline" if picture else "attachment", meta.file_name)
    return Response(data, status=200, headers=headers, content_type=meta.thumb_type if thumbnail else meta.content_type)


# ---- deleting -------------------------------------------------------------------------------------


@bp.route(f"/files/{_ID}", methods=["DELETE"])
def delete(attachment_id):
    """Delete a file: its uploader; for a file whose message is in a named room, its owner and moderators; a server admin
    for general and rooms. 200 {"id", "message", "event"} (the message carrying it and its delete event; "message" null
    for a file no message carried). A file the caller may not see is 404 like a missing one; one they see but may not
    delete 403; one already deleted 410."""
    user, how, refusal = _identify()
    if refusal is not None:
        return refusal
    origin = request.headers.get("Origin")
    # A browser sends Origin with every DELETE: a page of another site must not ride on this site's cookie (nor on a
    # token it has no business holding).
    if origin is not None and not security.origin_allowed(origin, current_app.extensions["chat.auth"].allowed_origins):
        return json_error(403, f"origin not allowed: {origin[:100]}")
    if user is None:
        return json_error(401, "sign in, or send an API token as Authorization: Bearer TOKEN", bearer=True)
    if how == "session" and not _csrf_ok(request.headers.get("X-CSRFToken")):
        return json_error(400, "the CSRF token is missing or invalid: send the page's token as X-CSRFToken")
    up = _uploads()
    try:
        meta = up.queries.meta(attachment_id)
        if meta is None or not _visible(meta, user):
            return _not_found()
        if meta.deleted_ms is not None:
            return json_error(410, "this file was deleted")
        outcome = up.deleter.delete(user, meta)
    except StoreUnavailable:
        return json_error(503, "the file store is not answering; try again")
    if outcome.status != 200:
        return json_error(outcome.status, outcome.error, **(outcome.fields or {}))
    log.info("%s deleted file %d (message %s)", user, attachment_id, outcome.fields["message"])
    return jsonify(outcome.fields)
