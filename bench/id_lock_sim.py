"""A simulation of how message ids are assigned, on MariaDB: commits per second with 1-N writer processes when every
commit takes one global row lock (today's `chat_meta`), one lock per room stream (what docs/scaling.md proposes), or
InnoDB's AUTO_INCREMENT (no order across processes at all, for scale).

    .venv/bin/python bench/id_lock_sim.py [--writers 1,2,4,8] [--seconds 3] [--rooms 64] [--batch 1]

Each writer is a process with its own connection that, for `--seconds`, runs transactions of `--batch` single-row
messages as the server's writer does (the id reserved under the lock, the rows inserted, COMMIT). It writes into its own
throwaway database (`id_lock_sim`, dropped after). Prints one JSON line per (mode, writers)."""
import argparse
import json
import multiprocessing
import time

import pymysql

DB = "id_lock_sim"
BODY = "a chat sized message of about sixty bytes of text, for the sim"


def connect(database=DB):
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database, autocommit=False)


def setup(rooms):
    conn = connect(None)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cur.execute(f"USE {DB}")
        cur.execute("CREATE TABLE meta (stream INT PRIMARY KEY, next_id BIGINT NOT NULL) ENGINE=InnoDB")
        cur.execute("INSERT INTO meta VALUES " + ", ".join(f"({r}, 1)" for r in range(rooms + 1)))
        cur.execute("CREATE TABLE messages (stream INT NOT NULL, id BIGINT NOT NULL, sender VARCHAR(64) NOT NULL, "
                    "body MEDIUMTEXT NOT NULL, created_ms BIGINT NOT NULL, PRIMARY KEY (stream, id)) ENGINE=InnoDB")
        cur.execute("CREATE TABLE auto_messages (id BIGINT AUTO_INCREMENT PRIMARY KEY, sender VARCHAR(64) NOT NULL, "
                    "body MEDIUMTEXT NOT NULL, created_ms BIGINT NOT NULL) ENGINE=InnoDB")
    conn.commit()
    conn.close()


def writer(mode, index, rooms, batch, start_at, stop_at, out):
    conn = connect()
    cur = conn.cursor()
    done = 0
    room = index % rooms + 1  # per-room: each writer's room (the busiest case for a stream: many writers, few rooms)
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        now = int(time.time() * 1000)
        if mode == "autoinc":
            cur.executemany("INSERT INTO auto_messages (sender, body, created_ms) VALUES (%s, %s, %s)",
                            [(f"w{index}", BODY, now)] * batch)
        else:
            stream = 0 if mode == "global" else room
            cur.execute("UPDATE meta SET next_id = next_id + %s WHERE stream = %s", (batch, stream))
            cur.execute("SELECT next_id FROM meta WHERE stream = %s", (stream,))
            first = cur.fetchone()[0] - batch
            cur.executemany("INSERT INTO messages (stream, id, sender, body, created_ms) VALUES (%s, %s, %s, %s, %s)",
                            [(stream, first + i, f"w{index}", BODY, now) for i in range(batch)])
        conn.commit()
        done += 1
    conn.close()
    out.put(done)


def run(mode, writers, seconds, rooms, batch):
    out = multiprocessing.Queue()
    start_at = time.time() + 0.5
    procs = [multiprocessing.Process(target=writer, args=(mode, i, rooms, batch, start_at, start_at + seconds, out))
             for i in range(writers)]
    for p in procs:
        p.start()
    commits = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return commits / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writers", default="1,2,4,8")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rooms", type=int, default=64)
    p.add_argument("--batch", type=int, default=1, help="messages per transaction")
    args = p.parse_args()
    setup(args.rooms)
    try:
        for writers in (int(w) for w in args.writers.split(",")):
            for mode in ("global", "per-room", "autoinc"):
                rate = run(mode, writers, args.seconds, args.rooms, args.batch)
                print(json.dumps({"mode": mode, "writers": writers, "batch": args.batch, "commits_per_s": round(rate),
                                  "messages_per_s": round(rate * args.batch)}), flush=True)
    finally:
        conn = connect(None)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()


if __name__ == "__main__":
    main()
