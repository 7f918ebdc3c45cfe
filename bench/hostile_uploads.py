"""Hostile-upload figures for one checkout (before/after): server peak RSS while N many-pixel, few-byte pictures
upload at once, and the bytes one account stores in one second.

    python3 bench/hostile_uploads.py [--root /path/to/checkout] [--pictures 2,6] [-- extra server flags]

Starts ROOT/run_server.py on a fresh SQLite database with its default settings (plus the extra flags), registers
accounts over HTTP, and prints one line per figure. Loopback only.
"""
import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [HERE]

import requests  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from tests.support.servers import free_port  # noqa: E402
from tests.support.webusers import get_token, signed_up  # noqa: E402

MiB = 1024 * 1024


class Server:
    def __init__(self, root, directory, extra):
        self.port = free_port()
        self.http_url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, os.path.join(root, "run_server.py"), "--port", str(self.port),
                "--database", f"sqlite:///{directory}/chat.db", "--bots", "", *extra]
        self.proc = subprocess.Popen(args, cwd=directory, stdout=subprocess.PIPE, stderr=open(f"{directory}/server.log", "wb"))
        assert "listening on" in self.proc.stdout.readline().decode()

    def memory(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024  # MB
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def flat_picture(width, height):
    image = Image.new("RGB", (width, height), (30, 90, 160))
    ImageDraw.Draw(image).ellipse((0, 0, width // 2, height // 2), fill=(200, 40, 40))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=9)
    return out.getvalue()


def upload(server, token, name, data):
    return requests.post(server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
                         files={"file": (name, data, "application/octet-stream")}, timeout=120)


def pictures_at_once(server, token, picture, count):
    statuses = [None] * count
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        statuses[i] = upload(server, token, f"big{i}.png", picture).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def bytes_in_one_second(server, token, threads=4):
    data = b"x" * (5 * MiB - 1) + b"\n"
    stored, statuses = [0], []
    deadline = time.monotonic() + 1.0
    lock = threading.Lock()

    def run():
        while time.monotonic() < deadline:
            r = upload(server, token, "flood.txt", data)
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 201:
                    stored[0] += len(data)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return stored[0], statuses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=HERE)
    parser.add_argument("--pictures", default="2,6")
    parser.add_argument("--size", default="7000x7000")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    picture = flat_picture(width, height)
    print(f"root {args.root}; picture {width}x{height} = {width * height / 1e6:.0f} MP in {len(picture) // 1024} KiB; flags {args.extra}")
    for count in map(int, args.pictures.split(",")):
        with tempfile.TemporaryDirectory() as directory:
            server = Server(args.root, directory, args.extra)
            _, name = signed_up(server, "bomber")
            token = get_token(server, name)
            idle = server.memory("VmRSS")
            statuses = pictures_at_once(server, token, picture, count)
            print(f"{count} pictures at once: RSS idle {idle} MB, peak {server.memory('VmHWM')} MB, after {server.memory('VmRSS')} MB; "
                  f"answers {sorted(statuses)}")
            server.stop()
    with tempfile.TemporaryDirectory() as directory:
        server = Server(args.root, directory, args.extra)
        _, name = signed_up(server, "flooder")
        token = get_token(server, name)
        stored, statuses = bytes_in_one_second(server, token)
        print(f"one account, one second, 4 connections of 5 MiB uploads: {stored / MiB:.0f} MiB stored; answers "
              f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }")
        server.stop()


if __name__ == "__main__":
    main()
