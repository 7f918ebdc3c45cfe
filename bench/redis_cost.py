"""Redis's own CPU per PUBLISH of a chat-sized batch, by number of subscribers: the cost the bus puts on Redis.

Run by bench/run.py (cluster scenario) pinned to the load client's core, against the Redis the scenario used:

    python3 bench/redis_cost.py --redis-url redis://127.0.0.1:PORT/0 --redis-pid PID --channel PREFIX:costprobe

It publishes `--batches` batches, each the bytes our server publishes for `--batch-messages` group messages
(chat/cluster/busformat.py's encode_batch of the bench's fan-out frames; 1 and 150 by default), one PUBLISH at a time
awaiting its reply as the server does, to 1, 2, 4 and 8 subscribers that read and discard, from as many publishers
as subscribers (as in a cluster, where each process publishes and subscribes). Redis's CPU (its threads' schedstat run time)
is read around each run, minus its background rate measured over an idle second just before. The last line on
stdout is the JSON result. Everything stops by itself (--timeout per run).
"""
import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chat.websocket import frames  # noqa: E402
from chat.cluster.busformat import BusMessage, encode_batch  # noqa: E402

FILLER = "hello everyone, this is a benchmark chat message"


def redis_cpu(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def bulk(data):
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


async def read_reply_line(reader, timeout):
    return await asyncio.wait_for(reader.readline(), timeout)


def batch_payload(n):
    """The bytes our server publishes for `n` group messages of the fan-out scenario (ids, sender, frame)."""
    entries = []
    for i in range(n):
        body = (f'{{"type":"message","id":{1000000 + i},"user":"c2sender","msg":"#C3.2# {i} {FILLER}",'
                f'"ts":"2026-11-21T08:00:00.000Z"}}')
        entries.append(BusMessage(1000000 + i, "c2sender", None, frames.encode_text(body)))
    return encode_batch("vm-12345-abcdef", entries)


async def run_one(host, port, pid, channel, payload, batches, subscribers, timeout, depth=1):
    expected = len(b"*3\r\n" + bulk(b"message") + bulk(channel) + bulk(payload)) * batches
    subs = []
    for _ in range(subscribers):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(command(b"SUBSCRIBE", channel))
        await writer.drain()
        # The confirmation: *3, $9, subscribe, $N, the channel, :count (6 lines)
        for _ in range(6):
            await read_reply_line(reader, timeout)
        subs.append((reader, writer))

    async def drain(reader):
        got = 0
        while got < expected:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        return got

    pubs = [await asyncio.open_connection(host, port) for _ in range(subscribers)]
    # Redis's background (timers, other clients of a shared Redis) over an idle second, to subtract.
    b0, t0 = redis_cpu(pid), time.monotonic()
    await asyncio.sleep(0.5)
    background_rate = (redis_cpu(pid) - b0) / (time.monotonic() - t0)
    drains = [asyncio.ensure_future(drain(r)) for r, _ in subs]
    cmd = command(b"PUBLISH", channel, payload)
    receivers = set()

    async def publish(reader, writer, n):
        # `depth` PUBLISHes written at once, then their replies read: 1 is what a server does when Redis is idle
        # between its batches; more keeps Redis busy, so the per-command wake-up cost is shared (Redis under load).
        for start in range(0, n, depth):
            k = min(depth, n - start)
            writer.write(cmd * k)
            for _ in range(k):
                line = await read_reply_line(reader, timeout)
                receivers.add(int(line[1:]))

    shares = [batches // len(pubs) + (1 if i < batches % len(pubs) else 0) for i in range(len(pubs))]
    c0, t0 = redis_cpu(pid), time.monotonic()
    await asyncio.gather(*(publish(r, w, n) for (r, w), n in zip(pubs, shares)))
    got = await asyncio.wait_for(asyncio.gather(*drains), timeout)
    await asyncio.sleep(0.05)
    wall = time.monotonic() - t0
    cpu = redis_cpu(pid) - c0
    for w in [w for _, w in pubs] + [w for _, w in subs]:
        w.close()
    if receivers != {subscribers} or any(g < expected for g in got):
        raise RuntimeError(f"{subscribers} subscribers: PUBLISH reached {receivers}, bytes read {got} of {expected}")
    net = cpu - background_rate * wall
    return dict(subscribers=subscribers, publishers=len(pubs), depth=depth, publishes=batches, cpu_s=cpu, background_cpu_s=background_rate * wall, wall_s=wall,
                net_us_per_publish=net / batches * 1e6, publishes_per_s=batches / wall)


async def amain(args):
    u = urlsplit(args.redis_url)
    out = dict(ok=True, runs=[])
    for depth in args.depth:
        for n in args.batch_messages:
            payload = batch_payload(n)
            for s in args.subscribers:
                r = await run_one(u.hostname, u.port or 6379, args.redis_pid, args.channel.encode(), payload, args.batches, s,
                                  args.timeout, depth)
                r.update(batch_messages=n, payload_bytes=len(payload), net_us_per_message=r["net_us_per_publish"] / n)
                out["runs"].append(r)
                print(f"  [redis] depth {depth}, batches of {n}, {s} subscribers: {r['net_us_per_publish']:.1f} us of Redis "
                      f"CPU per PUBLISH ({r['net_us_per_message']:.3f} us per message), {r['publishes_per_s']:,.0f} PUBLISH/s",
                      file=sys.stderr, flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--redis-pid", type=int, required=True)
    p.add_argument("--channel", required=True, help="a channel under the run's unique prefix")
    p.add_argument("--batches", type=int, default=1000)
    p.add_argument("--batch-messages", default="1,150",
                   help="messages per batch, comma-separated (150: the burst rounds' batches; 1: a message on its own)")
    p.add_argument("--subscribers", default="1,2,4,8")
    p.add_argument("--depth", default="1,32", help="PUBLISHes each publisher has in flight, comma-separated")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    args.subscribers = [int(x) for x in args.subscribers.split(",")]
    args.batch_messages = [int(x) for x in args.batch_messages.split(",")]
    args.depth = [int(x) for x in args.depth.split(",")]
    runs = len(args.subscribers) * len(args.batch_messages) * len(args.depth)
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        result = run(asyncio.wait_for(amain(args), args.timeout * runs))
    except Exception as e:  # noqa: BLE001 - reported in the JSON
        result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
