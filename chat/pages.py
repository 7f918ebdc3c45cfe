"""Pages and the health check."""
from flask import Blueprint, current_app, jsonify, render_template

bp = Blueprint("pages", __name__)

# The page loads only its own script and styles: no inline script, no inline event handlers, no style attributes.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self' ws: wss:",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@bp.route("/")
def index():
    settings = current_app.extensions["chat"].settings
    response = current_app.make_response(render_template("index.html", max_name_length=settings.max_name_length, max_message_size=settings.max_message_size, typing_interval=settings.typing_interval, max_topic_length=settings.max_topic_length, max_mentions=settings.max_mentions_per_message))
    response.headers.update(PAGE_HEADERS)
    return response


@bp.route("/healthz")
def healthz():
    health = current_app.extensions["chat"].health()
    response = jsonify(health)
    response.status_code = 200 if health["store_reachable"] and health["writer_running"] else 503
    return response
