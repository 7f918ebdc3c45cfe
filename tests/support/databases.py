"""The test databases: fresh SQLite files and fresh databases on the MariaDB test server, and direct queries on them."""
import os
import sqlite3
import uuid
from urllib.parse import unquote, urlsplit

import pymysql

MYSQL_ADMIN_URL = os.environ.get("CHAT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def mysql_params(url):
    p = urlsplit(url)
    return dict(host=p.hostname or "127.0.0.1", port=p.port or 3306, user=p.username or "root", password=p.password or "")


def mysql_reachable():
    try:
        pymysql.connect(connect_timeout=2, **mysql_params(MYSQL_ADMIN_URL)).close()
        return True
    except pymysql.err.MySQLError as e:
        return str(e)


class MySQLDatabases:
    """Creates fresh, uniquely named databases on the test server and drops them afterwards."""

    def __init__(self):
        self.params = mysql_params(MYSQL_ADMIN_URL)
        self.created = []

    def create(self):
        name = "chat_test_" + uuid.uuid4().hex[:12]
        conn = pymysql.connect(**self.params)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        conn.close()
        self.created.append(name)
        p = self.params
        auth = p["user"] + (":" + p["password"] if p["password"] else "")
        return f"mysql://{auth}@{p['host']}:{p['port']}/{name}"

    def drop_all(self):
        conn = pymysql.connect(**self.params)
        with conn.cursor() as cur:
            for name in self.created:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def fresh_database_url(request, kind, directory):
    """A fresh, empty database: a SQLite file in `directory`, or a new database on the MariaDB test server."""
    if kind == "mysql":
        return request.getfixturevalue("mysql_databases").create()
    return f"sqlite:///{directory / 'chat.db'}"


def db_execute(database_url, query, params=()):
    """Run one statement straight on the server's database (checks of what it stored, and the odd fixture)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(unquote(urlsplit(database_url).path)[1:])
        try:
            rows = conn.execute(query, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    p = urlsplit(database_url)
    conn = pymysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root", password=p.password or "",
                           database=p.path.lstrip("/"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(query.replace("?", "%s"), params)
            return cur.fetchall()
    finally:
        conn.close()
