"""Who may open /ws/<name>, decided before the upgrade: Origin, token or session, guests and their resume tokens,
the per-user connection cap."""
import logging

from flask import request, session

from chat.accounts.credentials import SESSION, TOKEN, NameHeld
from chat.responses import json_error
from chat.security import origin_allowed
from chat.store import StoreUnavailable

log = logging.getLogger("chat.admission")


def bearer_token():
    """The API token of this handshake: `Authorization: Bearer T` (wscat -H), else `?token=T`; None without one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("token")


def check_handshake(auth, name):
    """(Admission, None) when this request may open a websocket as `name`, else (None, an HTTP refusal)."""
    settings = auth.settings
    origin = request.headers.get("Origin")
    # A browser always sends Origin; a page elsewhere must not ride on this site's cookie.
    if origin is not None and not origin_allowed(origin, auth.allowed_origins):
        return None, json_error(403, f"origin not allowed: {origin[:100]}")
    credential = None  # (name, digest)
    token = sid = None
    try:
        token = bearer_token()
        if token is not None:
            credential = auth.resolve(token, TOKEN)
            if credential is None:
                return None, json_error(401, "the token is invalid, expired or revoked", bearer=True)
            if credential[0] != name:
                return None, json_error(403, f"this token belongs to another user, not {name}")
        elif origin is not None:
            # The session cookie counts only with an Origin that passed the check above: a client that sends
            # no Origin could be anything, so it needs a token (or a guest name).
            sid = session.get("sid")
            if sid:
                credential = auth.resolve(sid, SESSION)
        state = auth.handshake_state(name)
    except StoreUnavailable as e:
        if token is None and not sid:  # a guest, perhaps one coming back: nothing else is admitted from memory
            admitted = _admit_remembered_guest(auth, name)
            if admitted is not None:
                return admitted
        log.warning("refusing a websocket for %s: %s", name, e)
        return None, json_error(503, "the account store is not answering; try again")
    if state == "banned":
        return None, json_error(403, f"{name} is banned from this server")
    if state is None:
        if credential is not None and credential[0] != name:
            credential = None  # signed in as someone else, opening a name nobody owns: a guest like any other
        if credential is None and not settings.allow_guests:
            return None, json_error(403, f"guests are not allowed here: register {name} or sign in", bearer=True)
    elif state == "removed":
        return None, json_error(403, f"the account {name} was removed by the operator")
    elif credential is None:
        return None, json_error(
            401, f"{name} is a registered name: sign in, or pass its token as ?token= or an Authorization: Bearer header", bearer=True
        )
    elif credential[0] != name:
        return None, json_error(403, f"signed in as {credential[0]}, not {name}")
    cap = settings.max_connections_per_user
    if auth.connections_of(name) >= cap:
        return None, json_error(429, f"too many connections for {name}: at most {cap} at once")
    if state is None:
        return _admit_guest(auth, name)
    try:
        auth.wait_for_floor(name)
    except StoreUnavailable as e:
        log.warning("refusing a websocket for %s: %s", name, e)
        return None, json_error(503, "the server is catching up; try again")
    return auth.admit(name, credential[1], credential, admin=state == "admin"), None


def _admit_remembered_guest(auth, name):
    """While the store is down: a guest whose resume token this process confirmed within the hold's time comes back as
    it was ((Admission, None) or a refusal); None for anyone else, who is refused as the store is not answering."""
    resume = request.args.get("resume")
    if not auth.remembers_guest(name, resume):
        return None
    cap = auth.settings.max_connections_per_user
    if auth.connections_of(name) >= cap:
        return None, json_error(429, f"too many connections for {name}: at most {cap} at once")
    log.info("admitting guest %s by its resume token confirmed here: the store is not answering", name)
    return auth.admit(name, None, resume=resume), None


def _admit_guest(auth, name):
    """A guest keeps its name with its resume token (?resume=T); without one it may take only a name nobody holds."""
    admission = None
    try:
        resume = auth.hold_guest_name(name, request.args.get("resume"))
        admission = auth.admit(name, None, resume=resume)
        # A registration may have committed while this handshake waited on the store: it has not seen this admission
        # to close it, so look again now that the admission is in place (either this sees the account, or it sees us).
        state = auth.account_state(name)
    except NameHeld:
        return None, json_error(
            409, f"the name {name} is in use by another guest: pick another name, or reconnect with ?resume= and the token its welcome gave"
        )
    except StoreUnavailable as e:
        if admission is not None:
            admission.release()
        log.warning("refusing a websocket for %s: %s", name, e)
        return None, json_error(503, "the account store is not answering; try again")
    if state is not None:
        admission.resume = None  # the registration ended the hold: nothing to keep
        admission.release()
        try:
            auth.holds.drop(name)  # this handshake may have claimed it after the registration dropped it
        except StoreUnavailable:
            pass  # it ends by itself after guest_hold, and accounts go first anyway
        return None, json_error(401, f"{name} was just registered: sign in, or pick another name", bearer=True)
    return admission, None
