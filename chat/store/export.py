"""The queries of `python3 -m chat.admin export` (parameterised, read in pages so a big database streams): accounts (never
their password hashes), known users, files' metadata (never their bytes), read markers. Messages are Store.export_page."""

ACCOUNT_COLUMNS = "a.name, a.created_ms, a.password_hash IS NULL, (SELECT COUNT(*) FROM admins d WHERE d.name = a.name)"


class ExportQueries:
    """`store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_accounts = q(f"SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.name > ? ORDER BY a.name LIMIT ?")
        self._q_account = q(f"SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.name = ?")
        self._q_user = q("SELECT name, created_ms, last_seen_id, floor_id, file_floor_id FROM users WHERE name = ?")
        self._q_files = q(
            "SELECT id, uploader, recipient, file_name, content_type, size, sha256, created_ms, deleted_ms FROM attachments "
            "WHERE id > ? ORDER BY id LIMIT ?"
        )
        # A user's files: those they uploaded and the direct ones sent to them, above the name's file floor.
        self._q_user_files = q(
            "SELECT id, uploader, recipient, file_name, content_type, size, sha256, created_ms, deleted_ms FROM attachments "
            "WHERE id > ? AND (uploader = ? OR recipient = ?) AND id > ? ORDER BY id LIMIT ?"
        )
        self._q_markers = q("SELECT conversation, read_id FROM read_markers WHERE user = ? ORDER BY conversation")

    def _all(self, query, params):
        with self._store.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def accounts(self, after, limit):
        return [_account(r) for r in self._all(self._q_accounts, (after, limit))]

    def account(self, name):
        rows = self._all(self._q_account, (name,))
        return _account(rows[0]) if rows else None

    def user(self, name):
        """(created_ms, last_seen_id, floor_id, file_floor_id) of a name that ever connected, or None."""
        rows = self._all(self._q_user, (name,))
        return None if not rows else tuple(int(v) for v in rows[0][1:])

    def files(self, after, limit, user=None, file_floor=0):
        if user is None:
            rows = self._all(self._q_files, (after, limit))
        else:
            rows = self._all(self._q_user_files, (after, user, user, file_floor, limit))
        return [_file(r) for r in rows]

    def read_markers(self, user):
        return {conversation: int(read_id) for conversation, read_id in self._all(self._q_markers, (user,))}


def _account(row):
    return {"name": row[0], "created_ms": int(row[1]), "removed": bool(row[2]), "admin": bool(int(row[3]))}


def _file(row):
    return {
        "id": int(row[0]), "uploader": row[1], "to": row[2], "name": row[3], "content_type": row[4], "size": int(row[5]),
        "sha256": row[6], "created_ms": int(row[7]), "deleted_ms": None if row[8] is None else int(row[8]),
    }
