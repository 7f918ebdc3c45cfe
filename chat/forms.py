"""The registration and sign-in forms (Flask-WTF): server-side validation and the CSRF token, errors per field."""
from flask import current_app
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, ValidationError

from .auth import MAX_PASSWORD_LENGTH
from .protocol import NAME_RULE, normalize_name


def _settings():
    return current_app.extensions["chat"].settings


class UserName:
    """The chat's own name rule (chat/protocol.py): the field's data becomes the normalised (lower-case) name."""

    def __call__(self, form, field):
        limit = _settings().max_name_length
        name = normalize_name(field.data or "", limit)  # surrounding spaces are dropped, letters lower-cased
        if name is None:
            raise ValidationError(f"Use 1-{limit} characters: {NAME_RULE}.")
        field.data = name


class PasswordLength:
    """At least min_password_length (a setting) and at most MAX_PASSWORD_LENGTH characters."""

    def __call__(self, form, field):
        shortest = _settings().min_password_length
        Length(min=shortest, max=MAX_PASSWORD_LENGTH, message=f"Use {shortest} to {MAX_PASSWORD_LENGTH} characters.")(
            form, field
        )


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RegisterForm(FlaskForm):
    username = StringField("User name", validators=[InputRequired("Choose a user name."), UserName()])
    password = PasswordField("Password", validators=[InputRequired("Choose a password."), PasswordLength()])
    confirm = PasswordField(
        "Password again",
        validators=[InputRequired("Type the password again."), EqualTo("password", "The two passwords differ.")],
    )


class LoginForm(FlaskForm):
    username = StringField("User name", filters=[_strip], validators=[InputRequired("Enter your user name.")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password.")])
