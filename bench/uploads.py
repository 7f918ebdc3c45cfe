"""Attachment figures: upload time of a 5 MiB file, re-encoding a 12-megapixel JPEG, and chat latency meanwhile.

    python3 bench/uploads.py [--store sqlite|mysql] [--rounds 5]

Starts run_server.py on a fresh database (the test harness's ServerProcess), registers a user, and prints medians.
Loopback only; needs the dev requirements (requests, websocket-client) and, for --store mysql, MariaDB as in the tests.
The latency figures are what a client on the same machine sees: on two cores they include the uploading client's
own CPU and the commit of the file's BLOB ahead of the message. To see whether the server's event loop itself stalls,
run the server with GEVENT_MONITOR_THREAD_ENABLE=1 GEVENT_MAX_BLOCKING_TIME=0.005 and read its log.
"""
import argparse
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

import requests  # noqa: E402
from PIL import Image  # noqa: E402

from chat.uploads import images  # noqa: E402
from tests.support import filesamples  # noqa: E402
from tests.support.databases import MySQLDatabases  # noqa: E402
from tests.support.servers import ServerProcess  # noqa: E402
from tests.support.webusers import get_token, signed_up, token_socket  # noqa: E402

MiB = 1024 * 1024


def photo_like(width=4000, height=3000):
    """A 12-megapixel JPEG that compresses like a photo (shapes, gradient and grain), about 3-5 MiB."""
    base = filesamples.picture(width, height)
    grain = Image.effect_noise((width, height), 40).convert("RGB")
    out = io.BytesIO()
    Image.blend(base, grain, 0.12).save(out, "JPEG", quality=85)
    return out.getvalue()


def timed_upload(server, token, name, data):
    start = time.perf_counter()
    response = requests.post(server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
                             files={"file": (name, data)}, timeout=120)
    elapsed = time.perf_counter() - start
    assert response.status_code == 201, response.text
    return elapsed


def chat_latency(server, name, token, duration, during=None):
    """Ack round trips (ms) of one message every 5 ms for `duration` seconds, and for as long as `during()` runs in
    another process (so the uploading client never holds this one's GIL)."""
    client = token_socket(server, name, token)
    worker = multiprocessing.get_context("fork").Process(target=during) if during else None
    if worker:
        worker.start()
    samples = []
    end = time.perf_counter() + duration
    i = 0
    while time.perf_counter() < end or (worker and worker.is_alive()):
        i += 1
        sent = time.perf_counter()
        client.send({"type": "message", "msg": f"ping {i}", "ref": i})
        while client.recv_type("ack", "message")["type"] != "ack":
            pass
        samples.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.005)
    if worker:
        worker.join()
    client.close()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], samples[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    photo = photo_like()
    process_times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        images.process(photo, "jpeg", 320, 50_000_000)
        process_times.append(time.perf_counter() - start)
    print(f"12-megapixel JPEG ({len(photo) / MiB:.2f} MiB): verify + re-encode + thumbnail in-process, median "
          f"{statistics.median(process_times) * 1000:.0f} ms")

    directory = tempfile.mkdtemp(prefix="bench-uploads-")
    databases = None
    if args.store == "sqlite":
        url = f"sqlite:///{directory}/chat.db"
    else:
        databases = MySQLDatabases()
        url = databases.create()
    server = ServerProcess(url, os.path.join(directory, "server.log"), rate_limit=1_000_000, rate_burst=1_000_000).start()
    try:
        _, name = signed_up(server, "bench")
        token = get_token(server, name)
        text = (b"0123456789abcdef" * (5 * MiB // 16))[: 5 * MiB]
        times = [timed_upload(server, token, "five.txt", text) for _ in range(args.rounds)]
        t = statistics.median(times)
        print(f"{args.store}: 5 MiB text file, POST to 201 (stored and message committed): median {t * 1000:.0f} ms, "
              f"{5 / t:.1f} MiB/s")
        times = [timed_upload(server, token, "photo.jpg", photo) for _ in range(args.rounds)]
        print(f"{args.store}: the 12-megapixel JPEG, POST to 201: median {statistics.median(times) * 1000:.0f} ms")

        base = chat_latency(server, name, token, 2.0)
        busy = chat_latency(server, name, token, 0.5, during=lambda: [timed_upload(server, token, "p.jpg", photo) for _ in range(3)])
        print(f"{args.store}: chat ack latency p50/p99/max, idle: {base[0]:.2f}/{base[1]:.2f}/{base[2]:.2f} ms; "
              f"during 3 photo uploads: {busy[0]:.2f}/{busy[1]:.2f}/{busy[2]:.2f} ms")
    finally:
        server.stop()
        if databases:
            databases.drop_all()


if __name__ == "__main__":
    main()
