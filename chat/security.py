"""HTTP hardening: the secret key, session cookie flags, CSRF, security headers on every response, proxy headers, the Origin check."""
import logging
import os
import secrets
from urllib.parse import urlsplit

from flask import render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from chat.pages import CONTENT_SECURITY_POLICY
from chat.responses import json_error

log = logging.getLogger("chat.security")

SESSION_COOKIE_NAME = "chat_session"
SECRET_FILE = "secret_key"
# Responses that are not pages (JSON, static files) may load nothing and be framed by nobody.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

csrf = CSRFProtect()


def load_secret_key(settings):
    """CHAT_SECRET_KEY, or the key in INSTANCE_DIR/secret_key, created (mode 0600) on first start.

    Several processes may start at once: the key is written to a private temporary file and linked
    into place, so every process reads the one key that won.
    """
    if settings.secret_key:
        return settings.secret_key
    directory = settings.instance_dir
    path = os.path.join(directory, SECRET_FILE)
    try:
        with open(path, encoding="ascii") as f:
            key = f.read().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("generated a new secret key in %s", path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        os.unlink(tmp)
    with open(path, encoding="ascii") as f:
        return f.read().strip()


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie (it holds only the CSRF secret and the server-side session id), marked
    Secure whenever the request came over TLS (directly, or per X-Forwarded-Proto with trust_proxy)."""

    def get_cookie_secure(self, app):
        return request.is_secure


def init_app(app, settings):
    app.secret_key = load_secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=int(settings.session_lifetime),
        # The chat page stays open for hours; its sign-out form's token must outlive Flask-WTF's 1 h default.
        # The token is tied to the session cookie, which expires with the sign-in.
        WTF_CSRF_TIME_LIMIT=None,
        # That check needs a Referer header, and our pages send none (Referrer-Policy: no-referrer).
        WTF_CSRF_SSL_STRICT=False,
    )
    app.session_interface = SessionInterface()
    if settings.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
    csrf.init_app(app)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(413, _body_refused)
    app.register_error_handler(408, _body_refused)


def _security_headers(response):
    headers = response.headers
    for name, value in COMMON_HEADERS.items():
        headers.setdefault(name, value)
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("Cache-Control", "no-store")
    else:
        headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
    return response


def _csrf_refused(error):
    log.info("refused a form without a valid CSRF token: %s %s: %s", request.method, request.path, error.description)
    return render_template("message.html", title="Form expired", text=f"{error.description} Reload the page and try again."), 400


def _body_refused(error):
    """A body over max_request_body (413), or one that did not arrive within http_body_timeout (408), as JSON."""
    if error.code == 413:
        limit = request.max_content_length
        message = f"the request body is too large: at most {limit} bytes" if limit else "the request body is too large"
    else:
        message = "the request body did not arrive in time"
    return json_error(error.code, message)


# ---- the websocket handshake's Origin check -----------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc, scheme):
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname or "", port or _DEFAULT_PORTS.get(scheme))


def parse_allowed_origins(text):
    return frozenset(o.strip().rstrip("/").lower() for o in text.split(",") if o.strip())


def origin_allowed(origin, allowed):
    """True when `origin` (an Origin header) is the server's own origin, or listed in `allowed` ("*": any).

    The server's own origin is the page's host and port as this request names it (Host, or
    X-Forwarded-Host behind a trusted proxy), over http or https.
    """
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        return False
    host = request.host.lower()
    own = _host_port(host, "http")
    theirs = _host_port(parts.netloc, parts.scheme)
    if own is None or theirs is None or own[0] != theirs[0]:
        return False
    if ":" in host.rsplit("]", 1)[-1]:  # the Host names a port: the page's must be the same
        return own[1] == theirs[1]
    # No port in Host: the default one, of http or https (a TLS proxy in front may not say which).
    return theirs[1] in (80, 443)
