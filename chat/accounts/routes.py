"""Account pages and API: /register, /login, /logout, POST /api/register, POST and DELETE /api/token, /api/names/<name>,
and the operator's /admin/disconnect (signed with the secret key; used by `python3 -m chat.admin remove-user`)."""
import logging
import math

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from chat import security
from chat.accounts.credentials import (
    REASON_ACCOUNT_REMOVED,
    REASON_SIGNED_OUT,
    REASON_TOKEN_REVOKED,
    SESSION,
    TOKEN,
    Busy,
    NameTaken,
    Throttled,
    WeakPassword,
    expires_at,
)
from chat.accounts.forms import LoginForm, RegisterForm
from chat.accounts.admission import bearer_token
from chat.names import NAME_RULE
from chat.responses import json_error
from chat.store import StoreUnavailable

log = logging.getLogger("chat.accounts")

bp = Blueprint("accounts", __name__)

ADMIN_SALT = "chat-admin"
ADMIN_MAX_AGE = 60  # seconds an operator's signed request stays valid


def init_app(app, settings, auth):
    """Secret key, cookies, CSRF and headers (chat/security.py); the AuthService for these routes; the routes."""
    security.init_app(app, settings)
    app.extensions["chat.auth"] = auth
    app.register_blueprint(bp)
    for view in (create_token, revoke_token, register_api, admin_disconnect):  # credentials in the body or header, no cookie
        security.csrf.exempt(view)
    return auth


def admin_serializer(secret_key):
    return URLSafeTimedSerializer(secret_key, salt=ADMIN_SALT)


def _auth():
    return current_app.extensions["chat.auth"]


def _settings():
    return current_app.extensions["chat"].settings


def signed_in_user():
    """The account this browser is signed in as, checked against the server-side session; None if not (or no longer)."""
    if "auth_user" in g:
        return g.auth_user
    user = None
    sid = session.get("sid")
    if sid:
        try:
            found = _auth().resolve(sid, SESSION)
        except StoreUnavailable as e:
            log.warning("cannot check a session: %s", e)
            found = None
        else:
            if found is None:
                session.pop("sid", None)  # signed out elsewhere, revoked or expired: forget it
        user = found[0] if found else None
    g.auth_user = user
    return user


@bp.app_context_processor
def _page_context():
    settings = _settings()
    return {
        "signed_in_user": signed_in_user(),
        "allow_guests": settings.allow_guests,
        "max_name_length": settings.max_name_length,
        "min_password_length": settings.min_password_length,
    }


def _start_session(name):
    session.clear()  # a fresh CSRF secret too: nothing from before the sign-in carries over
    session["sid"] = _auth().issue(name, SESSION)
    session.permanent = True
    g.auth_user = name


def _page(template, form, status=200, notice=None, retry_after=None):
    response = current_app.make_response((render_template(template, form=form, notice=notice), status))
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _wait(error):
    """Whole seconds for Retry-After (never 0: the client must wait)."""
    return max(1, math.ceil(error.retry_after))


def _throttled_page(template, form, error):
    wait = _wait(error)
    if isinstance(error, Busy):
        return _page(template, form, 503, f"The server is busy checking other passwords. Try again in {wait} seconds.", wait)
    return _page(template, form, 429, f"{error.message.capitalize()}. Try again in {wait} seconds.", wait)


def _throttled_json(error):
    wait = _wait(error)
    if isinstance(error, Busy):
        return json_error(503, "the server is busy checking other passwords; try again later", wait=wait, retry_after=wait)
    return json_error(429, f"{error.message}; try again later", wait=wait, retry_after=wait)


# ---- pages ------------------------------------------------------------------------------------


@bp.route("/register", methods=["GET", "POST"])
def register():
    if signed_in_user():
        return redirect(url_for("pages.index"))
    form = RegisterForm()
    if not form.validate_on_submit():
        return _page("register.html", form, 400 if request.method == "POST" else 200)
    name = form.username.data
    try:
        _register(name, form.password.data)
        _start_session(name)
    except NameTaken:
        form.username.errors.append("That name is taken.")
        return _page("register.html", form, 409)
    except WeakPassword as e:  # the form checked already; kept for a rule that only the service knows
        form.password.errors.append(str(e))
        return _page("register.html", form, 400)
    except (Throttled, Busy) as e:
        return _throttled_page("register.html", form, e)
    except StoreUnavailable as e:
        log.warning("registration failed: %s", e)
        return _page("register.html", form, 503, "The server cannot store accounts right now. Try again soon.")
    return redirect(url_for("pages.index"))


def _register(name, password):
    """Create the account, as the auth's register() does; NameTaken also for a bot's name."""
    auth = _auth()
    reserved = getattr(current_app.extensions["chat"], "is_reserved", None)
    if (reserved is not None and reserved(name)) or auth.account_state(name) is not None:
        raise NameTaken(name)
    auth.register(name, password, request.remote_addr)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if signed_in_user():
        return redirect(url_for("pages.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        return _page("login.html", form, 400 if request.method == "POST" else 200)
    try:
        name = _auth().authenticate(form.username.data, form.password.data, request.remote_addr)
        if name is not None:
            _start_session(name)
    except (Throttled, Busy) as e:
        return _throttled_page("login.html", form, e)
    except StoreUnavailable as e:
        log.warning("sign-in failed: %s", e)
        return _page("login.html", form, 503, "The server cannot check accounts right now. Try again soon.")
    if name is None:
        form.password.errors.append("Wrong user name or password.")
        return _page("login.html", form, 401)
    return redirect(url_for("pages.index"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Ends this browser's session on the server and closes the websockets it opened (4001 "signed out")."""
    sid = session.get("sid")
    if sid:
        try:
            _auth().revoke(sid, REASON_SIGNED_OUT)
        except StoreUnavailable as e:
            log.warning("sign-out failed: %s", e)
            text = "The server cannot reach its session store, so you are still signed in. Try again soon."
            return render_template("message.html", title="Not signed out", text=text), 503
    session.clear()
    g.auth_user = None
    return redirect(url_for("pages.index"))


# ---- API ------------------------------------------------------------------------------------------


CREDENTIALS_MISSING = 'send "username" and "password" (JSON or form fields)'


def _body_credentials():
    """(fields, username, password) of a JSON or form body; username and password are None unless both are given."""
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict):
        data = {}
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return data, None, None
    return data, username, password


@bp.route("/api/token", methods=["POST"])
def create_token():
    """{"username","password"[,"expires_in"]} (JSON or form fields) -> {"token","token_type","user","expires_in","expires_at"}."""
    data, username, password = _body_credentials()
    if username is None:
        return json_error(400, CREDENTIALS_MISSING)
    lifetime = _settings().token_lifetime
    asked = data.get("expires_in")  # a shorter life than the server's token_lifetime, if the client wants one
    if asked is not None:
        try:
            asked = float(asked) if not isinstance(asked, bool) else None
        except (TypeError, ValueError):
            asked = None
        if asked is None or not 0 < asked <= lifetime:
            return json_error(400, f'"expires_in" must be a number of seconds, more than 0 and at most {lifetime:g}')
        lifetime = asked
    try:
        name = _auth().authenticate(username, password, request.remote_addr)
        token = _auth().issue(name, TOKEN, lifetime) if name is not None else None
    except (Throttled, Busy) as e:
        return _throttled_json(e)
    except StoreUnavailable as e:
        log.warning("token request failed: %s", e)
        return json_error(503, "the account store is not answering; try again")
    if token is None:
        return json_error(401, "wrong user name or password")
    seconds = int(lifetime) if lifetime == int(lifetime) else lifetime
    response = jsonify(token=token, token_type="Bearer", user=name, expires_in=seconds, expires_at=expires_at(lifetime))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/register", methods=["POST"])
def register_api():
    """{"username","password"} (JSON or form fields) -> 201 {"user"}; 400 {"error","field"} names the field to fix."""
    data, raw, password = _body_credentials()
    if raw is None:
        return json_error(400, CREDENTIALS_MISSING)
    auth = _auth()
    name = auth.normalize(raw)
    if name is None:
        limit = _settings().max_name_length
        return json_error(400, f"use 1-{limit} characters: {NAME_RULE}", field="username")
    try:
        _register(name, password)
    except NameTaken:
        return json_error(409, "that name is taken", field="username")
    except WeakPassword as e:
        return json_error(400, str(e), field="password")
    except (Throttled, Busy) as e:
        return _throttled_json(e)
    except StoreUnavailable as e:
        log.warning("registration failed: %s", e)
        return json_error(503, "the account store is not answering; try again")
    response = jsonify(user=name)
    response.status_code = 201
    return response


@bp.route("/api/token", methods=["DELETE"])
def revoke_token():
    """Revoke the token in `Authorization: Bearer` (or JSON {"token"}); the sockets it opened close with 4001."""
    token = bearer_token()
    if token is None:
        body = request.get_json(silent=True)
        token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return json_error(400, "send the token as Authorization: Bearer TOKEN")
    try:
        name = _auth().revoke(token, REASON_TOKEN_REVOKED)
    except StoreUnavailable:
        return json_error(503, "the account store is not answering; try again")
    if name is None:
        return json_error(401, "the token is invalid, expired or already revoked")
    return "", 204


@bp.route("/api/names/<path:raw>")
def name_status(raw):
    """What the chat page needs before joining: is this name valid, registered, and is it the signed-in user?"""
    auth = _auth()
    name = auth.normalize(raw)
    if name is None:
        return jsonify(name=raw[:64], valid=False)
    try:
        state = auth.account_state(name)
        held = state is None and auth.held_by_another(name, request.args.get("resume"))
    except StoreUnavailable:
        return json_error(503, "the account store is not answering; try again")
    return jsonify(
        name=name,
        valid=True,
        registered=state is not None,
        held=held,  # another guest holds it (not the one whose ?resume= token came): chat/accounts/holds.py
        signed_in=signed_in_user() == name,
        guests=_settings().allow_guests,
    )


@bp.route("/admin/disconnect", methods=["POST"])
def admin_disconnect():
    """Close every socket of a name the operator just removed or banned. The body is {"name", "reason"?} signed with the secret key."""
    try:
        payload = admin_serializer(current_app.secret_key).loads(request.get_data(as_text=True), max_age=ADMIN_MAX_AGE)
        name = payload["name"]
        reason = payload.get("reason", REASON_ACCOUNT_REMOVED)  # python3 -m chat.admin ban sends its own
    except (BadSignature, KeyError, TypeError, AttributeError):
        return json_error(403, "bad or expired signature")
    closed = _auth().close_sockets(name, str(reason))
    log.info("operator closed the sockets of %s (%s): %d connections", name, reason, closed)
    return jsonify(name=name, closed=closed)
