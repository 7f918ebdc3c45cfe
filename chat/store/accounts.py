"""Account and credential queries (parameterised), on the message store's pool: tables `accounts` and `auth_credentials`."""
import sqlite3
import time

import pymysql

_INTEGRITY_ERRORS = (sqlite3.IntegrityError, pymysql.err.IntegrityError)


class NameTaken(Exception):
    """The name already has an account (or is reserved after a removal)."""


def now_ms():
    return int(time.time() * 1000)


class AccountQueries:
    """Every SQL statement about accounts, sign-in sessions and API tokens; `store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_get = q("SELECT name, password_hash FROM accounts WHERE name = ?")
        self._q_insert = q("INSERT INTO accounts (name, password_hash, created_ms) VALUES (?, ?, ?)")
        self._q_disable = q("UPDATE accounts SET password_hash = NULL WHERE name = ?")
        self._q_delete = q("DELETE FROM accounts WHERE name = ?")
        self._q_cred_insert = q(
            "INSERT INTO auth_credentials (secret_hash, kind, name, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)"
        )
        self._q_cred_get = q("SELECT name, kind, expires_ms FROM auth_credentials WHERE secret_hash = ? AND expires_ms > ?")
        self._q_cred_name = q("SELECT name FROM auth_credentials WHERE secret_hash = ?")
        self._q_cred_delete = q("DELETE FROM auth_credentials WHERE secret_hash = ?")
        self._q_cred_delete_user = q("DELETE FROM auth_credentials WHERE name = ?")
        self._q_cred_purge = q("DELETE FROM auth_credentials WHERE expires_ms <= ?")

    # ---- accounts -----------------------------------------------------------------------

    def get_account(self, name):
        """(name, password_hash) or None; password_hash is None for a removed (reserved) account."""
        with self._store._cursor() as cur:
            cur.execute(self._q_get, (name,))
            row = cur.fetchone()
        return None if row is None else (row[0], row[1])

    def create_account(self, name, password_hash):
        """Raises NameTaken when the name has an account already (the primary key decides, so two racing sign-ups cannot both win)."""
        try:
            with self._store._cursor() as cur:
                cur.execute(self._q_insert, (name, password_hash, now_ms()))
        except _INTEGRITY_ERRORS:
            raise NameTaken(name) from None

    def remove_account(self, name, release=False):
        """Disable the account (the name stays reserved) or, with `release`, delete it. True if it existed."""
        with self._store._cursor() as cur:
            cur.execute(self._q_delete if release else self._q_disable, (name,))
            changed = cur.rowcount
            if not release and changed == 0:
                # MySQL counts only changed rows: an account removed before still exists.
                cur.execute(self._q_get, (name,))
                changed = 1 if cur.fetchone() is not None else 0
        return changed > 0

    # ---- credentials (sessions and tokens kept in the database) --------------------------------

    def add_credential(self, secret_hash, kind, name, expires_ms):
        with self._store._cursor() as cur:
            cur.execute(self._q_cred_insert, (secret_hash, kind, name, now_ms(), expires_ms))

    def get_credential(self, secret_hash):
        """(name, kind, expires_ms) of a credential that has not expired, or None."""
        with self._store._cursor() as cur:
            cur.execute(self._q_cred_get, (secret_hash, now_ms()))
            row = cur.fetchone()
        return None if row is None else (row[0], row[1], int(row[2]))

    def delete_credential(self, secret_hash):
        """The name the credential belonged to, or None if there was none."""
        with self._store._cursor() as cur:
            cur.execute(self._q_cred_name, (secret_hash,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(self._q_cred_delete, (secret_hash,))
        return row[0]

    def delete_credentials_of(self, name):
        with self._store._cursor() as cur:
            cur.execute(self._q_cred_delete_user, (name,))
            return cur.rowcount

    def purge_expired(self):
        with self._store._cursor() as cur:
            cur.execute(self._q_cred_purge, (now_ms(),))
            return cur.rowcount
