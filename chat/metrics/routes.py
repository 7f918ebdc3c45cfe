"""GET /metrics: to loopback clients, or to anyone with the metrics_token as a bearer token; absent when metrics is off."""
import hmac
import ipaddress

from flask import Blueprint, Response, current_app, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from chat.responses import json_error

bp = Blueprint("metrics", __name__)


def init_app(app, exporter):
    app.extensions["chat.metrics"] = exporter
    app.register_blueprint(bp)


@bp.route("/metrics")
def metrics():
    refusal = _refusal(current_app.extensions["chat"].settings.metrics_token)
    if refusal is not None:
        return refusal
    body = current_app.extensions["chat.metrics"].render()
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"})


def _refusal(token):
    """None when this request may read the metrics, else the 401/403 (which carries no metric)."""
    if _from_loopback():
        return None
    if not token:
        return json_error(403, "metrics are answered only to this host (loopback); set metrics_token to allow others")
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return json_error(401, "metrics need the metrics token: Authorization: Bearer TOKEN", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not hmac.compare_digest(given.encode(), token.encode()):
        return json_error(403, "wrong metrics token")
    return None


def _from_loopback():
    """Whether the client is on this host. Behind a trusted proxy (trust_proxy) both the proxy's address and the client's
    it forwarded must be loopback: nginx on this host makes every request come from 127.0.0.1, and a client reaching
    the port directly may forge X-Forwarded-For."""
    addresses = [request.remote_addr]
    original = request.environ.get("werkzeug.proxy_fix.orig")
    if original is not None:
        addresses.append(original.get("REMOTE_ADDR"))
    return all(_is_loopback(a) for a in addresses)


def _is_loopback(address):
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
