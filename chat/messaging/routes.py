"""The websocket endpoints: /ws/<name> for chat, and /echo on the same websocket layer when the test configuration asks."""
import logging

import gevent
from flask import Blueprint, Response, current_app, request

from chat.websocket import frames
from chat.messaging.addresses import AddressCounts
from chat.accounts.admission import check_handshake
from chat.messaging.session import GuardedSession
from chat.websocket.handler import ACCEPT_KEY, HandshakeError
from chat.messaging.protocol import parse_message_id
from chat.names import NAME_RULE, normalize_name
from chat.responses import json_error

bp = Blueprint("ws", __name__)
log = logging.getLogger("chat.ws")

# gevent-websocket's own handler (as in gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker) upgrades
# before the app runs: the socket reaches the view already open, and the view can neither refuse nor take it over.
WRONG_HANDLER_REASON = "wrong server setup: run gunicorn with -k chat.gunicorn_worker.ChatWebSocketWorker"
_wrong_handler_logged = False
# Websockets per client address in this process (the forwarded address behind a trusted proxy: see chat/security.py).
_addresses = AddressCounts()


def _admit_address(settings):
    """(address, None) once this request's client address is counted, or (None, an HTTP 429) at its cap."""
    address = request.remote_addr or ""
    cap = settings.max_connections_per_address
    if not _addresses.admit(address, cap):
        log.info("refused a websocket from %s: at its cap of %d", address, cap)
        return None, json_error(429, f"too many connections from your address: at most {cap} at once")
    return address, None


def _run_counted(address, run):
    """Run a websocket's life; its address stops counting as soon as it ends."""
    try:
        run()
    finally:
        _addresses.release(address)


def _run_session(session):
    """_run_counted for a session, which knows its address (one reference kept for the connection's life, not three)."""
    try:
        session.run()
    finally:
        _addresses.release(session.address)


def _upgrade(settings):
    """(connection, None) after the 101, or (None, error response) before it."""
    accept = request.environ.get(ACCEPT_KEY)
    if accept is None:
        upgraded = request.environ.get("wsgi.websocket")
        if upgraded is not None:
            _close_upgraded(upgraded)
            return None, Response()  # gevent-websocket discards it
        return None, json_error(400, "this server's websocket handler is not in use; run run_server.py")
    try:
        return accept(settings), None
    except HandshakeError as e:
        return None, json_error(e.status, e.message, headers=e.headers)


def _close_upgraded(ws):
    """Close a socket that gevent-websocket's own handler upgraded: 1011 with a reason naming the worker to use."""
    global _wrong_handler_logged
    if not _wrong_handler_logged:
        _wrong_handler_logged = True
        log.error(
            "websocket upgraded by gevent-websocket's own handler, not chat.websocket.handler.ChatWebSocketHandler: closing every "
            "socket with 1011. Under gunicorn use -k chat.gunicorn_worker.ChatWebSocketWorker (not "
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker); or run run_server.py"
        )
    try:
        # gevent-websocket's close() drops the code (the peer would see 1005): write the close frame ourselves.
        ws.raw_write(frames.encode_close(frames.CLOSE_INTERNAL_ERROR, WRONG_HANDLER_REASON))
    except OSError:
        pass
    ws.closed = True  # so gevent-websocket sends no second close frame


# A refused handshake from a client that sends no Origin (a terminal client: wscat prints no HTTP body) is upgraded and
# closed with a code that says why: 4000 + (the HTTP status - 400) for 4xx (401 -> 4001), 1013 ("try again later") for 503.
CLOSE_TRY_AGAIN_LATER = 1013


def _close_code(status):
    return CLOSE_TRY_AGAIN_LATER if status == 503 else 4000 + status - 400 if 400 <= status < 500 else frames.CLOSE_POLICY_VIOLATION


def _readable(settings, address, refusal):
    """`refusal` (an HTTP error response) as a terminal client can read it: after the upgrade, a close frame with its
    code and reason, when the client sent no Origin; else (a browser, or no upgrade possible) the HTTP refusal itself.
    The socket counts against its address until the close handshake ends (close_timeout at most)."""
    if request.headers.get("Origin") is not None:
        return refusal
    conn, failed = _upgrade(settings)
    if failed is not None:
        return refusal
    body = refusal.get_json(silent=True) or {}
    conn.close(_close_code(refusal.status_code), str(body.get("error", "refused")))  # cut to fit a close frame
    _addresses.hold(address)  # released when the close handshake ends
    gevent.spawn(_run_counted, address, lambda: conn.run(_ignore_text))
    return Response()


def _ignore_text(text):
    return None


@bp.route("/ws", defaults={"username": ""}, websocket=True, strict_slashes=False)
@bp.route("/ws/<path:username>", websocket=True)
def chat_socket(username):
    service = current_app.extensions["chat"]
    settings = service.settings
    address, refusal = _admit_address(settings)
    if refusal is not None:
        service.counts.refused_handshake("address_cap")
        return refusal  # over its address's cap: no socket at all, not even to close it
    try:
        return _chat_socket(service, settings, username, address)
    finally:
        _addresses.release(address)  # a session (or a refusal's close) counts itself while it runs


# Handshake refusals are counted by reason (chat/metrics): check_handshake's by their HTTP status, all from a fixed set.
_REFUSAL_REASONS = {401: "unauthorized", 403: "forbidden", 409: "name_in_use", 429: "user_cap", 503: "unavailable"}


def _chat_socket(service, settings, username, address):
    counts = service.counts
    user = normalize_name(username, settings.max_name_length)
    if user is None or username != username.strip():
        counts.refused_handshake("bad_name")
        return _readable(settings, address, json_error(400, f"invalid user name: use 1-{settings.max_name_length} characters: {NAME_RULE}"))
    if service.is_reserved(user):
        counts.refused_handshake("reserved_name")
        return _readable(settings, address, json_error(403, f"the name {user!r} is reserved for a bot"))
    since = request.args.get("since")
    if since is not None:
        since = parse_message_id(since)
        if since is None:
            counts.refused_handshake("bad_request")
            return _readable(settings, address, json_error(400, "since must be a message id (a whole number)"))
    # Origin, credentials, guests and the connection cap: see chat/accounts/admission.py.
    admission, refusal = check_handshake(current_app.extensions["chat.auth"], user)
    if refusal is not None:
        counts.refused_handshake(_REFUSAL_REASONS.get(refusal.status_code, "other"))
        return _readable(settings, address, refusal)
    conn, refusal = _upgrade(settings)
    if refusal is not None:
        counts.refused_handshake("bad_handshake")
        admission.release()
        return refusal
    _addresses.hold(address)  # the session's own count, released when it ends
    gevent.spawn(_run_session, GuardedSession(service, user, conn, since, admission, address))
    return Response()  # the handler's greenlet ends here; the session's goes on


def echo_socket():
    """Echoes every message back on the chat's own websocket layer (for the Autobahn conformance run)."""
    settings = current_app.extensions["chat"].settings
    address, refusal = _admit_address(settings)
    if refusal is not None:
        return refusal
    conn, refusal = _upgrade(settings)
    if refusal is not None:
        _addresses.release(address)
        return refusal
    echo_binary = lambda data: conn.send_frame(frames.encode_frame(frames.OP_BINARY, data))  # noqa: E731
    gevent.spawn(_run_counted, address, lambda: conn.run(conn.send_text, echo_binary))
    return Response()


def register_echo(app):
    app.add_url_rule("/echo", "echo", echo_socket, websocket=True)
