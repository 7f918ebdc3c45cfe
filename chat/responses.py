"""The JSON error every HTTP route answers with: {"error": message, ...fields}, its status and its headers."""
import math

from flask import jsonify


def json_error(status, message, *, bearer=False, wait=None, headers=(), **fields):
    """`bearer` asks for an API token (WWW-Authenticate: Bearer realm="chat"); `wait` is the seconds the client must
    wait, sent as Retry-After in whole seconds (never 0); `headers` are added as given."""
    response = jsonify(error=message, **fields)
    response.status_code = status
    if bearer:
        response.headers["WWW-Authenticate"] = 'Bearer realm="chat"'
    if wait is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    response.headers.extend(headers)
    return response
