"""The registration and sign-in forms (Flask-WTF): server-side validation and the CSRF token, errors per field."""
from flask import current_app
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, ValidationError

from chat.accounts.passwords import password_problem
from chat.names import NAME_RULE, normalize_name


def _settings():
    return current_app.extensions["chat"].settings


class UserName:
    """The chat's own name rule (chat/messaging/protocol.py): the field's data becomes the normalised (lower-case) name."""

    def __call__(self, form, field):
        limit = _settings().max_name_length
        name = normalize_name(field.data or "", limit)  # surrounding spaces are dropped, letters lower-cased
        if name is None:
            raise ValidationError(f"Use 1-{limit} characters: {NAME_RULE}.")
        field.data = name


class NewPassword:
    """chat/accounts/passwords.py's rules: min_password_length (a setting) to 1024 characters, not a common password, not the
    user name (the form's, once it is valid)."""

    def __call__(self, form, field):
        name = form.username.data if not form.username.errors else None
        problem = password_problem(field.data or "", name, _settings().min_password_length)
        if problem is not None:
            raise ValidationError(problem)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RegisterForm(FlaskForm):
    username = StringField("User name", validators=[InputRequired("Choose a user name."), UserName()])
    password = PasswordField("Password", validators=[InputRequired("Choose a password."), NewPassword()])
    confirm = PasswordField(
        "Password again",
        validators=[InputRequired("Type the password again."), EqualTo("password", "The two passwords differ.")],
    )


class LoginForm(FlaskForm):
    username = StringField("User name", filters=[_strip], validators=[InputRequired("Enter your user name.")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password.")])
