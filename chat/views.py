"""Pages and the health check."""
from flask import Blueprint, current_app, jsonify, render_template

bp = Blueprint("pages", __name__)


@bp.route("/")
def index():
    return render_template("index.html")


@bp.route("/healthz")
def healthz():
    health = current_app.extensions["chat"].health()
    response = jsonify(health)
    response.status_code = 200 if health["store_reachable"] else 503
    return response
