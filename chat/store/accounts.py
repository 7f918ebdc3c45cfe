"""Account, credential and name queries (parameterised), on the message store's pool: tables `accounts`,
`auth_credentials`, `guest_holds`, `admins`, `server_bans` and the floors in `users`."""
import sqlite3

import pymysql

from chat.clock import now_ms

_INTEGRITY_ERRORS = (sqlite3.IntegrityError, pymysql.err.IntegrityError)


class NameTaken(Exception):
    """The name already has an account (or is reserved after a removal)."""


class AccountQueries:
    """Every SQL statement about accounts, sign-in sessions and API tokens; `store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_get = q("SELECT name, password_hash FROM accounts WHERE name = ?")
        # One round trip per handshake: whether the name has an account, whether it is enabled, whether it is banned.
        self._q_state = q(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE name = ?), "
            "(SELECT COUNT(*) FROM accounts WHERE name = ? AND password_hash IS NOT NULL), "
            "(SELECT COUNT(*) FROM server_bans WHERE name = ?), "
            "(SELECT COUNT(*) FROM admins WHERE name = ?)"
        )
        self._q_ban = q(f"{store.dialect.insert_ignore} INTO server_bans (name, banned_by, banned_ms, reason) VALUES (?, ?, ?, ?)")
        self._q_unban = q("DELETE FROM server_bans WHERE name = ?")
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
        self._q_add_user = q(f"{store.dialect.insert_ignore} INTO users (name, created_ms, last_seen_id) VALUES (?, ?, 0)")
        # A floor only rises; last_seen_id restarts there, so the new holder is sent no earlier holder's directs.
        self._q_raise_floor = q(
            "UPDATE users SET floor_id = CASE WHEN floor_id < ? THEN ? ELSE floor_id END, "
            "file_floor_id = CASE WHEN file_floor_id < ? THEN ? ELSE file_floor_id END, "
            "last_seen_id = CASE WHEN last_seen_id < ? THEN ? ELSE last_seen_id END WHERE name = ?"
        )
        self._q_forget_markers = q("DELETE FROM read_markers WHERE user = ?")
        self._q_max_file = q("SELECT COALESCE(MAX(id), 0) FROM attachments")
        self._q_hold_get = q("SELECT secret_hash FROM guest_holds WHERE name = ? AND expires_ms > ?")
        self._q_hold_until = q("SELECT secret_hash, expires_ms FROM guest_holds WHERE name = ? AND expires_ms > ?")
        self._q_hold_insert = q("INSERT INTO guest_holds (name, secret_hash, expires_ms) VALUES (?, ?, ?)")
        self._q_hold_take_expired = q("UPDATE guest_holds SET secret_hash = ?, expires_ms = ? WHERE name = ? AND expires_ms <= ?")
        self._q_hold_extend = q("UPDATE guest_holds SET expires_ms = ? WHERE name = ? AND secret_hash = ?")
        self._q_hold_delete = q("DELETE FROM guest_holds WHERE name = ?")
        self._q_hold_purge = q("DELETE FROM guest_holds WHERE expires_ms <= ?")
        self._q_admin_grant = q(f"{store.dialect.insert_ignore} INTO admins (name, granted_ms) VALUES (?, ?)")
        self._q_admin_revoke = q("DELETE FROM admins WHERE name = ?")
        # An admin is an enabled account: a removed (or released, then taken) name is none.
        self._q_is_admin = q(
            "SELECT 1 FROM admins a JOIN accounts c ON c.name = a.name WHERE a.name = ? AND c.password_hash IS NOT NULL"
        )

    # ---- admins -------------------------------------------------------------------------

    def grant_admin(self, name):
        """Make the account `name` a server admin; False when it has no enabled account."""
        account = self.get_account(name)
        if account is None or account[1] is None:
            return False
        with self._store.cursor() as cur:
            cur.execute(self._q_admin_grant, (name, now_ms()))
        return True

    def revoke_admin(self, name):
        """False when `name` was no admin."""
        with self._store.cursor() as cur:
            cur.execute(self._q_admin_revoke, (name,))
            return cur.rowcount > 0

    def is_admin(self, name):
        with self._store.cursor() as cur:
            cur.execute(self._q_is_admin, (name,))
            return cur.fetchone() is not None

    # ---- server bans ----------------------------------------------------------------------

    def ban(self, name, banned_by, reason):
        """Ban `name` from the whole server; False when it was banned already (the first ban's reason stays)."""
        with self._store.cursor() as cur:
            cur.execute(self._q_ban, (name, banned_by, now_ms(), reason))
            return cur.rowcount > 0

    def unban(self, name):
        """False when `name` was not banned."""
        with self._store.cursor() as cur:
            cur.execute(self._q_unban, (name,))
            return cur.rowcount > 0

    def name_state(self, name):
        """(has an account, the account is enabled, the name is banned from the server, the name is an admin's), in one
        query (an admin is one only with an enabled account: handshake_state)."""
        with self._store.cursor() as cur:
            cur.execute(self._q_state, (name, name, name, name))
            row = cur.fetchone()
        return bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3])

    # ---- accounts -----------------------------------------------------------------------

    def get_account(self, name):
        """(name, password_hash) or None; password_hash is None for a removed (reserved) account."""
        with self._store.cursor() as cur:
            cur.execute(self._q_get, (name,))
            row = cur.fetchone()
        return None if row is None else (row[0], row[1])

    def create_account(self, name, password_hash, message_floor):
        """Raises NameTaken when the name has an account already (the primary key decides, so two racing sign-ups cannot both win).

        In the same transaction the name gets a new floor (`message_floor`, and the newest file): the account never sees
        what guests under the name sent or received, not even for an instant.
        """
        try:
            with self._store.cursor() as cur:
                cur.execute(self._q_insert, (name, password_hash, now_ms()))
                self._raise_floor(cur, name, message_floor)
        except _INTEGRITY_ERRORS:
            raise NameTaken(name) from None

    # ---- names changing hands ----------------------------------------------------------------

    def new_holder(self, name, message_floor):
        """`name` has a new holder: direct messages up to `message_floor` and every direct file so far are not theirs."""
        with self._store.cursor() as cur:
            self._raise_floor(cur, name, message_floor)

    def _raise_floor(self, cur, name, message_floor):
        cur.execute(self._q_max_file)
        file_floor = int(cur.fetchone()[0])
        cur.execute(self._q_add_user, (name, now_ms()))
        cur.execute(self._q_raise_floor, (message_floor, message_floor, file_floor, file_floor, message_floor, message_floor, name))
        # How far the earlier holder read is theirs too (chat/store/conversations.py).
        cur.execute(self._q_forget_markers, (name,))

    def hold_digest(self, name):
        """The resume-token digest of the guest holding `name`, or None when no hold is running."""
        with self._store.cursor() as cur:
            cur.execute(self._q_hold_get, (name, now_ms()))
            row = cur.fetchone()
        return None if row is None else row[0]

    def hold_of(self, name):
        """(the resume-token digest of the guest holding `name`, when its hold ends in ms), or None when none runs."""
        with self._store.cursor() as cur:
            cur.execute(self._q_hold_until, (name, now_ms()))
            row = cur.fetchone()
        return None if row is None else (row[0], int(row[1]))

    def claim_hold(self, name, digest, expires_ms):
        """Take `name` for the guest with `digest` unless a hold is running; True if taken (two racers: one wins)."""
        try:
            with self._store.cursor() as cur:
                cur.execute(self._q_hold_insert, (name, digest, expires_ms))
            return True
        except _INTEGRITY_ERRORS:
            pass
        with self._store.cursor() as cur:  # an ended hold's row: the UPDATE locks it, so one racer changes it
            cur.execute(self._q_hold_take_expired, (digest, expires_ms, name, now_ms()))
            return cur.rowcount == 1

    def extend_hold(self, name, digest, expires_ms):
        """Move the end of `digest`'s hold on `name`; False when the name has another holder now."""
        with self._store.cursor() as cur:
            cur.execute(self._q_hold_extend, (expires_ms, name, digest))
            changed = cur.rowcount
            if changed == 0:  # MySQL counts only changed rows: an unchanged expiry is still ours
                cur.execute(self._q_hold_get, (name, 0))
                row = cur.fetchone()
                changed = 1 if row is not None and row[0] == digest else 0
        return changed > 0

    def drop_hold(self, name):
        with self._store.cursor() as cur:
            cur.execute(self._q_hold_delete, (name,))

    def purge_holds(self):
        with self._store.cursor() as cur:
            cur.execute(self._q_hold_purge, (now_ms(),))
            return cur.rowcount

    def remove_account(self, name, release=False):
        """Disable the account (the name stays reserved) or, with `release`, delete it. True if it existed."""
        with self._store.cursor() as cur:
            cur.execute(self._q_delete if release else self._q_disable, (name,))
            changed = cur.rowcount
            if not release and changed == 0:
                # MySQL counts only changed rows: an account removed before still exists.
                cur.execute(self._q_get, (name,))
                changed = 1 if cur.fetchone() is not None else 0
        return changed > 0

    # ---- credentials (sessions and tokens kept in the database) --------------------------------

    def add_credential(self, secret_hash, kind, name, expires_ms):
        with self._store.cursor() as cur:
            cur.execute(self._q_cred_insert, (secret_hash, kind, name, now_ms(), expires_ms))

    def get_credential(self, secret_hash):
        """(name, kind, expires_ms) of a credential that has not expired, or None."""
        with self._store.cursor() as cur:
            cur.execute(self._q_cred_get, (secret_hash, now_ms()))
            row = cur.fetchone()
        return None if row is None else (row[0], row[1], int(row[2]))

    def delete_credential(self, secret_hash):
        """The name the credential belonged to, or None if there was none."""
        with self._store.cursor() as cur:
            cur.execute(self._q_cred_name, (secret_hash,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(self._q_cred_delete, (secret_hash,))
        return row[0]

    def delete_credentials_of(self, name):
        with self._store.cursor() as cur:
            cur.execute(self._q_cred_delete_user, (name,))
            return cur.rowcount

    def purge_expired(self):
        with self._store.cursor() as cur:
            cur.execute(self._q_cred_purge, (now_ms(),))
            return cur.rowcount
