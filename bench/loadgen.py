"""Benchmark load client: picows on uvloop, one process, drives one server through one scenario and prints JSON.

Run by bench/run.py pinned to core 0 (`taskset -c 0`); the server runs pinned to core 1. The server's CPU
time and RSS are read from /proc/PID while the scenario runs, so the numbers below bracket exactly the
measured work. The last line on stdout is the JSON result; progress goes to stderr.
"""
import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
from types import SimpleNamespace

import uvloop
from picows import WSListener, WSMsgType, ws_connect

CLK_TCK = os.sysconf("SC_CLK_TCK")
TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
perf_ns = time.perf_counter_ns

# A chat-sized message: about 60 bytes of text.
FILLER = "hello everyone, this is a benchmark chat message"


def log(*args):
    print("  [load]", *args, file=sys.stderr, flush=True)


# ---- the server process, read from /proc ------------------------------------------------------------


class ServerProc:
    def __init__(self, pid):
        self.pid = pid
        cores = sorted(os.sched_getaffinity(pid))
        self.core = cores[0] if len(cores) == 1 else None

    def cpu(self):
        """utime + stime of the server process in seconds (all threads, live and exited; 1/CLK_TCK resolution)."""
        with open(f"/proc/{self.pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def cpu_precise(self):
        """(utime + stime, the sum of every live thread's schedstat run time in ns / 1e9, thread count)."""
        total = 0
        threads = 0
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
                threads += 1
            except (FileNotFoundError, ProcessLookupError):
                pass
        return self.cpu(), total / 1e9, threads

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self):
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                data = f.read()
            return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")
        except FileNotFoundError:
            return False

    async def settle(self, quiet=0.3, timeout=60.0):
        """Wait until the server's CPU time stops moving for `quiet` seconds; returns the seconds waited."""
        t0 = time.monotonic()
        last = self.cpu()
        still_since = time.monotonic()
        while time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.05)
            now = self.cpu()
            if now != last:
                last = now
                still_since = time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return time.monotonic() - t0
        log(f"warning: server still busy after {timeout:.0f} s of waiting to settle")
        return time.monotonic() - t0


def machine_times():
    """(busy, steal) seconds summed over every CPU, from /proc/stat (1/CLK_TCK resolution)."""
    with open("/proc/stat", "rb") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def interference(wall, machine0, machine1, ours):
    """Other processes' CPU during a round, in cores: the machine's busy time minus ours (server, client, database)."""
    others = max(0.0, (machine1[0] - machine0[0]) - ours) / wall
    steal = (machine1[1] - machine0[1]) / wall
    # Every figure involved counts in ticks: allow a few ticks of rounding before calling a round disturbed.
    return dict(others_cores=others, steal_cores=steal, tick_slack=5 / CLK_TCK / wall)


# ---- clients ------------------------------------------------------------------------------------------


class Stats:
    """Everything unexpected that any client saw: error events, close frames, disconnects."""

    def __init__(self):
        self.errors = 0
        self.error_examples = []
        self.closes = 0
        self.close_examples = []
        self.disconnects = 0
        self.expect_disconnect = False

    def problems(self):
        return (self.errors, self.closes, self.disconnects)

    def note_error(self, name, payload):
        self.errors += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{name}: {payload[:300].decode('utf-8', 'replace')}")

    def note_close(self, name, code, reason):
        self.closes += 1
        if len(self.close_examples) < 5:
            self.close_examples.append(f"{name}: close {code} {reason!r}")

    def as_dict(self):
        return dict(
            errors=self.errors,
            error_examples=self.error_examples,
            server_closes=self.closes,
            close_examples=self.close_examples,
            unexpected_disconnects=self.disconnects,
        )


WAIT_HISTORY = False  # --wait-history: the server sends welcome and history on connect (ours does)
SIO = False  # --protocol socketio: Engine.IO 4 / Socket.IO 5 over the websocket transport (the Flask-SocketIO peer)
WAIT_READY = False  # wait for each connection's history (ours) or Socket.IO connect (`40`) before measuring


def ws_path(name, query=""):
    """The websocket path of user `name` (query: more `k=v&...` parameters, ours only)."""
    if SIO:
        return f"/socket.io/?EIO=4&transport=websocket&name={name}"
    return f"/ws/{name}" + (f"?{query}" if query else "")


def group_frame(text):
    """The bytes of a group message with this text: ours and the plain peers take the text itself; Socket.IO an event."""
    if SIO:
        return b'42["message",' + json.dumps(text).encode() + b"]"
    return text.encode()


def direct_frame(to, text):
    if SIO:
        return b'42["direct",' + json.dumps({"to": to, "msg": text}).encode() + b"]"
    return json.dumps({"to": to, "msg": text}).encode()


def _ignore(client, payload):
    return None


class Client(WSListener):
    """One websocket client. `handler(client, payload)` sees every text frame except error events."""

    def __init__(self, name, stats):
        super().__init__()
        self.name = name
        self.stats = stats
        self.transport = None
        self.handler = _ignore
        self.tag = None  # frames carrying this are counted (see Completion.arm)
        self.count = 0
        self.target = 0
        self.done = None  # a callback when count reaches target
        self.open = False
        self.ready = not WAIT_READY  # ours: once the connect-time history event arrived; Socket.IO: once `40` did

    def on_ws_connected(self, transport):
        self.transport = transport
        self.open = True

    def on_ws_frame(self, transport, frame):
        kind = frame.msg_type
        if kind is TEXT:
            payload = frame.get_payload_as_bytes()
            tag = self.tag
            if tag is not None and tag in payload:  # the fast path: a delivery being counted
                self.count += 1
                if self.count == self.target:
                    self.done()
                return
            if SIO and payload[:2] != b"42":
                self._engineio(transport, payload)
                return
            if payload.find(b'"error"', 0, 24) >= 0:
                self.stats.note_error(self.name, payload)
            elif not self.ready and payload.find(b'"history"', 0, 24) >= 0:
                self.ready = True
            self.handler(self, payload)
        elif kind is CLOSE:
            self.stats.note_close(self.name, int(frame.get_close_code()), frame.get_close_message())
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _engineio(self, transport, payload):
        """Engine.IO / Socket.IO control packets: answer pings (else the server drops idle sockets after
        pingInterval + pingTimeout), join the default namespace once the Engine.IO session is open."""
        kind = payload[:1]
        if kind == b"2":
            transport.send(TEXT, b"3" + payload[1:])
        elif kind == b"0":
            transport.send(TEXT, b"40")
        elif payload[:2] == b"40":
            self.ready = True
        elif payload[:2] == b"44":
            self.stats.note_error(self.name, payload)
        elif kind == b"1" or payload[:2] == b"41":
            self.stats.note_close(self.name, 1000, payload[:100].decode("utf-8", "replace"))
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        if self.open and not self.stats.expect_disconnect:
            self.stats.disconnects += 1
        self.open = False

    def send(self, text):
        self.transport.send(TEXT, text.encode())

    def send_group(self, text):
        self.transport.send(TEXT, group_frame(text))


async def connect_many(url, names, stats, concurrency=100, timeout=30.0, factory=None, marks=None):
    """Connect every name (at most `concurrency` handshakes at a time); returns the clients and the failures.

    `marks`: a dict that gets "upgraded", the perf_ns() when every handshake had ended (before waiting for readiness)."""
    factory = factory or Client
    sem = asyncio.Semaphore(concurrency)
    failures = []

    async def one(name):
        async with sem:
            try:
                _, client = await ws_connect(
                    lambda: factory(name, stats), url + ws_path(name), websocket_handshake_timeout=timeout,
                    read_buffer_init_size=4096,
                )
                return client
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                failures.append(f"{name}: {type(e).__name__}: {e}")
                return None

    clients = [c for c in await asyncio.gather(*(one(n) for n in names)) if c is not None]
    if marks is not None:
        marks["upgraded"] = perf_ns()
    if WAIT_READY and not failures:
        # Messages sent before a client's connect-time history would reach it inside that history event, not live.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(c.ready for c in clients):
            await asyncio.sleep(0.02)
        waiting = [c.name for c in clients if not c.ready]
        if waiting:
            what = "Socket.IO connect (40)" if SIO else "history event"
        failures += [f"{n}: no {what} within {timeout:.0f} s of connecting" for n in waiting]
    return clients, failures


async def close_all(clients, stats):
    stats.expect_disconnect = True
    for c in clients:
        if c.open:
            c.open = False  # a disconnect we asked for
            c.transport.disconnect(graceful=False)
    await asyncio.sleep(0.2)


def _ack_counter(client, payload):
    if b'"ack"' in payload[:16]:
        client.count += 1
        if client.count == client.target and client.done is not None:
            client.done()


class Completion:
    """Resolves when `n` clients have reached their targets; remembers when."""

    def __init__(self, n):
        self.remaining = n
        self.future = asyncio.get_running_loop().create_future()
        self.t_done = None
        if n == 0:
            self._finish()

    def arm(self, client, target, tag=None):
        """Count `client`'s frames that carry `tag` (or that its handler counts) up to `target`."""
        client.tag = tag
        client.count = 0
        client.target = target
        client.done = self._one

    def _one(self):
        self.remaining -= 1
        if self.remaining == 0:
            self._finish()

    def _finish(self):
        self.t_done = perf_ns()
        if not self.future.done():
            self.future.set_result(None)


async def wait_all(timeout, stats, *completions):
    """None when every completion resolved within `timeout` seconds, else why not.

    Gives up early (after a short grace period) when the server closes connections or sends error events.
    """
    everything = asyncio.ensure_future(asyncio.gather(*(asyncio.shield(c.future) for c in completions)))
    deadline = time.monotonic() + timeout
    baseline = stats.problems()
    trouble_since = None
    while True:
        done, _ = await asyncio.wait({everything}, timeout=0.1)
        if done:
            return None
        now = time.monotonic()
        if stats.problems() != baseline:
            trouble_since = trouble_since or now
            if now - trouble_since > 1.0:
                everything.cancel()
                return "the server closed connections or sent error events (see the examples)"
        if now > deadline:
            everything.cancel()
            return f"timed out after {timeout:.0f} s"


def client_cpu():
    t = os.times()
    return t.user + t.system


def cpu_between(before, after):
    """Server CPU seconds between two cpu_precise() readings, and which counter gave them.

    The per-thread schedstat sum has nanosecond resolution; utime+stime has 1/CLK_TCK (10 ms) but also
    counts threads that exited. The precise figure is used when the thread set did not change and both agree.
    """
    coarse = after[0] - before[0]
    fine = after[1] - before[1]
    if before[2] == after[2] and fine >= 0 and abs(fine - coarse) <= 2.5 / CLK_TCK + 0.05 * coarse:
        return fine, "schedstat"
    return coarse, "stat"


def shortfall(clients):
    missing = sum(max(0, c.target - c.count) for c in clients)
    short = sum(1 for c in clients if c.count < c.target)
    return missing, short


def connect_failed(failures):
    return dict(ok=False, failure=f"{len(failures)} connects failed", connect_failures=failures[:10], connect_failure_count=len(failures))


QUIET = dict(per_round=15.0, budget=90.0, waited=0.0)  # --quiet-wait, --quiet-budget


async def wait_quiet(server, sample=0.5):
    """Before a round: wait (within the budget) until unrelated processes use under 10% of a core."""
    waited = 0.0
    while True:
        m0, s0, c0, d0 = machine_times(), server.cpu(), client_cpu(), (DB_PROC.cpu() if DB_PROC else 0.0)
        await asyncio.sleep(sample)
        ours = (server.cpu() - s0) + (client_cpu() - c0) + ((DB_PROC.cpu() - d0) if DB_PROC else 0.0)
        i = interference(sample, m0, machine_times(), ours)
        busy = i["others_cores"] + i["steal_cores"]
        if busy <= 0.10 + 2 / CLK_TCK / sample or waited >= QUIET["per_round"] or QUIET["budget"] <= 0:
            if waited:
                log(f"waited {waited:.1f} s for other processes to quieten (now {busy:.0%} of a core)")
            return
        waited += sample
        QUIET["budget"] -= sample
        QUIET["waited"] += sample


DB_PROC = None  # the database server (mariadbd), when --db-pid is given: its CPU is reported apart


class Round:
    """Brackets one measured round: server CPU and client CPU from start() to stop()."""

    def __init__(self, server):
        self.server = server
        self.db_cpu = None

    async def start(self):
        await self.server.settle()
        await wait_quiet(self.server)
        self.cpu0 = self.server.cpu_precise()
        self.db0 = DB_PROC.cpu_precise() if DB_PROC else None
        self.machine0 = machine_times()
        self.db_coarse0 = DB_PROC.cpu() if DB_PROC else 0.0
        self.ccpu0 = client_cpu()
        self.t0 = perf_ns()
        return self.t0

    async def stop(self, t_end):
        """Call when the last expected frame arrived (at perf_ns() `t_end`); waits for the server to go idle."""
        self.wall = (t_end - self.t0) / 1e9
        self.client_cpu = client_cpu() - self.ccpu0
        # What else ran on the machine during the round (the database server counts as ours).
        ours = self.client_cpu + (self.server.cpu() - self.cpu0[0]) + ((DB_PROC.cpu() - self.db_coarse0) if DB_PROC else 0.0)
        self.interference = interference(self.wall, self.machine0, machine_times(), ours)
        await self.server.settle()
        self.cpu, self.cpu_source = cpu_between(self.cpu0, self.server.cpu_precise())
        if self.db0 is not None:
            self.db_cpu = cpu_between(self.db0, DB_PROC.cpu_precise())[0]
        return self.cpu


def disturbance(row):
    """Cores' worth of CPU that unrelated processes (or the hypervisor) took during a round, beyond rounding."""
    return max(0.0, row.get("others_cores", 0) + row.get("steal_cores", 0) - row.get("tick_slack", 0))


class Plan:
    """Round numbers: warm-up rounds, then measured ones; a measured round that other processes disturbed
    (over 10% of the pinned cores) is set aside and run again, up to --retries extra rounds."""

    def __init__(self, args):
        self.warmup, self.rounds, self.retries = args.warmup, args.rounds, args.retries
        self.kept, self.disturbed = [], []
        self.next = 0

    def __iter__(self):
        while len(self.kept) < self.rounds and self.next < self.warmup + self.rounds + self.retries:
            self.next += 1
            yield self.next - 1

    def keep(self, r, row):
        if r < self.warmup:
            return " (warm-up)"
        if disturbed := disturbance(row) > 0.10:
            if len(self.disturbed) < self.retries:
                self.disturbed.append(row)
                return " (DISTURBED by other processes: set aside, will run another)"
        self.kept.append(row)
        return " (disturbed by other processes: kept, no retries left)" if disturbed else ""

    def result(self):
        rounds = self.kept
        while len(rounds) < self.rounds and self.disturbed:
            rounds.append(self.disturbed.pop(0))
        return dict(ok=True, rounds=rounds, disturbed_rounds_set_aside=len(self.disturbed))


# ---- scenarios ----------------------------------------------------------------------------------------


async def scenario_fanout(args, server, stats):
    """`clients` receivers and one more sender; the sender sends `messages` group messages back to back."""
    receivers, failures = await connect_many(args.url, [f"fan{i}" for i in range(args.clients)], stats)
    senders, f2 = await connect_many(args.url, ["fansender"], stats)
    if failures or f2:
        return connect_failed(failures + f2)
    sender = senders[0]
    plan = Plan(args)
    rounds = plan.kept
    for r in plan:
        texts = [group_frame(f"#F{r}# {i} {FILLER}") for i in range(args.messages)]
        deliveries, acks = Completion(len(receivers)), Completion(1)
        tag = f"#F{r}#".encode()
        for c in receivers:
            deliveries.arm(c, args.messages, tag)
        sender.handler = _ack_counter
        acks.arm(sender, args.messages)
        measure = Round(server)
        t0 = await measure.start()
        send = sender.transport.send
        for t in texts:
            send(TEXT, t)
        if why := await wait_all(args.timeout, stats, deliveries, acks):
            missing, short = shortfall(receivers)
            return dict(ok=False, failure=f"round {r}: {why}", missing_deliveries=missing,
                        receivers_short=short, acks=sender.count, rounds=rounds)
        cpu = await measure.stop(max(deliveries.t_done, acks.t_done))
        n = len(receivers) * args.messages
        delivery_wall = (deliveries.t_done - t0) / 1e9
        row = dict(
            cpu_s=cpu, cpu_source=measure.cpu_source, deliveries=n, cpu_us_per_delivery=cpu / n * 1e6,
            deliveries_per_s=n / delivery_wall, delivery_wall_s=delivery_wall, ack_wall_s=(acks.t_done - t0) / 1e9,
            server_cpu_share=cpu / measure.wall, client_cpu_share=measure.client_cpu / measure.wall,
        )
        row.update(measure.interference)
        note = plan.keep(r, row)
        log(f"fanout round {r}{note}: {row['cpu_us_per_delivery']:.2f} us/delivery, "
            f"{row['deliveries_per_s']:,.0f}/s (last ack {row['ack_wall_s']:.3f} s), "
            f"server cpu {row['server_cpu_share']:.0%}, client cpu {row['client_cpu_share']:.0%}{_others(row)}")
    await close_all(receivers + senders, stats)
    return plan.result()


# ---- named rooms (the rooms scenario) --------------------------------------------------------------------


ROOM_FIELD = b'"room":"'
ROOM_TAG = b"#Q"  # room messages carry "#Q<round>:<room>#"; general ones "#G<round>#"


class RoomClient(Client):
    """A user in at most one named room. Counts its tagged frames like Client, and also every frame of a room it is
    not in: a room message tagged for another room (`foreign_messages`, the figure), or any other frame whose "room"
    field names another room (`foreign_other`: events, acks). "general" is everyone's room."""

    def __init__(self, name, stats):
        super().__init__(name, stats)
        self.room = None  # bytes: the named room this user joined (None: general only)
        self.field = None  # while counting room messages: b'"room":"R"', which every counted frame must carry
        self.unlabelled = 0  # counted frames without that field
        self.foreign_messages = 0
        self.foreign_other = 0
        self.foreign_examples = []
        self.acks = 0  # acks are counted apart: a room member both sends and receives in the same burst
        self.ack_target = 0
        self.ack_done = None

    def on_ws_frame(self, transport, frame):
        if frame.msg_type is TEXT:
            payload = frame.get_payload_as_bytes()
            tag = self.tag
            if tag is not None and tag in payload:  # the fast path: a delivery being counted
                if self.field is not None and self.field not in payload:
                    self.unlabelled += 1
                self.count += 1
                if self.count == self.target:
                    self.done()
                return
            if ROOM_TAG in payload or ROOM_FIELD in payload:
                self._check_rooms(payload)
        Client.on_ws_frame(self, transport, frame)

    def _check_rooms(self, payload):
        allowed = (b"general", self.room)
        i = payload.find(ROOM_TAG)
        if i >= 0:
            j = payload.find(b":", i)
            k = payload.find(b"#", j)
            if j > 0 and k > j and payload[j + 1 : k] not in allowed:
                self.foreign_messages += 1
                self._example(payload)
                return
        i = payload.find(ROOM_FIELD)
        while i >= 0:
            j = i + len(ROOM_FIELD)
            k = payload.find(b'"', j)
            if payload[j:k] not in allowed:
                self.foreign_other += 1
                self._example(payload)
                return
            i = payload.find(ROOM_FIELD, k)

    def _example(self, payload):
        if len(self.foreign_examples) < 3:
            room = self.room.decode() if self.room else "no named room"
            self.foreign_examples.append(f"{self.name} (in {room}): {payload[:200].decode('utf-8', 'replace')}")


def _room_ack_counter(client, payload):
    if b'"ack"' in payload[:16]:
        client.acks += 1
        if client.acks == client.ack_target and client.ack_done is not None:
            client.ack_done()


def arm_acks(completion, client, target):
    client.handler = _room_ack_counter
    client.acks = 0
    client.ack_target = target
    client.ack_done = completion._one


def foreign_counts(clients):
    return (sum(c.foreign_messages for c in clients), sum(c.foreign_other for c in clients),
            [e for c in clients for e in c.foreign_examples][:5])


async def scenario_rooms(args, server, stats):
    """`clients` users in rooms of `room_size` (each joins exactly one, by create or join), everyone in general, plus
    one more connection in general only that sends the general bursts.

    Each round has two bursts on the same server and the same connections, each measured on its own (order alternates
    per round): general, the sender writes `messages` group messages to all `clients` users (the fanout scenario's
    load); rooms, every user writes `room_messages` messages to its room, each delivered to the room's other members.
    Every frame any user gets is checked: a room message of another room, or any frame naming another room, is counted,
    and must be 0."""
    size, n = args.room_size, args.clients
    if size < 2 or n % size:
        return dict(ok=False, failure=f"--clients {n} is not a multiple of --room-size {size} (at least 2)")
    n_rooms = n // size
    users, f1 = await connect_many(args.url, [f"rm{i}" for i in range(n)], stats, factory=RoomClient)
    observers, f2 = await connect_many(args.url, ["rmgeneral"], stats, factory=RoomClient)
    if f1 or f2:
        return connect_failed(f1 + f2)
    users.sort(key=lambda c: int(c.name[2:]))
    sender = observers[0]
    everyone = users + observers
    rooms = [f"room{k}" for k in range(n_rooms)]
    for i, c in enumerate(users):
        c.room = rooms[i // size].encode()
    # Creators first (each user i with i % size == 0), then everyone else joins; each answers with an ack.
    t_setup = time.monotonic()
    for step, kind in ((0, "create"), (1, "join")):
        group = [c for i, c in enumerate(users) if (i % size == 0) == (step == 0)]
        acks = Completion(len(group))
        for c in group:
            arm_acks(acks, c, 1)
            c.send(json.dumps({"type": kind, "room": c.room.decode()}))
        if why := await wait_all(args.timeout, stats, acks):
            return dict(ok=False, failure=f"setup ({kind}): {why}", acks_missing=sum(1 for c in group if c.acks < 1))
    await server.settle(timeout=args.timeout)
    setup_s = time.monotonic() - t_setup
    setup_foreign = foreign_counts(everyone)
    log(f"rooms: {n} users in {n_rooms} rooms of {size} ({n_rooms} created, {n - n_rooms} joined) in {setup_s:.1f} s; "
        f"frames of other rooms during setup: {setup_foreign[0] + setup_foreign[1]}")
    if setup_foreign[0] or setup_foreign[1]:
        return dict(ok=False, failure=f"setup: {setup_foreign[0] + setup_foreign[1]} frames naming another room reached "
                    "users not in it", foreign_examples=setup_foreign[2], setup_s=setup_s)

    async def recount(phase):
        """After a burst, once the server is idle: every user got exactly its count (no late duplicates)."""
        await asyncio.sleep(0.1)
        extra = [c for c in users if c.count != c.target]
        return {f"{phase}_wrong_counts": len(extra),
                f"{phase}_wrong_count_examples": [f"{c.name}: {c.count} of {c.target}" for c in extra[:3]]}

    async def general(r):
        """The fanout scenario's burst over these connections: the sender (in no named room) to all users."""
        tag = f"#G{r}#".encode()
        texts = [f"#G{r}# {i} {FILLER}".encode() for i in range(args.messages)]
        deliveries, acks = Completion(n), Completion(1)
        for c in users:
            c.field = None
            deliveries.arm(c, args.messages, tag)
        arm_acks(acks, sender, args.messages)
        measure = Round(server)
        t0 = await measure.start()
        send = sender.transport.send
        for t in texts:
            send(TEXT, t)
        if why := await wait_all(args.timeout, stats, deliveries, acks):
            missing, short = shortfall(users)
            return dict(why=f"general burst: {why}", missing_deliveries=missing, receivers_short=short, acks=sender.acks)
        cpu = await measure.stop(max(deliveries.t_done, acks.t_done))
        total = n * args.messages
        wall = (deliveries.t_done - t0) / 1e9
        return dict(**await recount("general"), general_cpu_s=cpu, general_cpu_source=measure.cpu_source, general_deliveries=total,
                    general_cpu_us_per_delivery=cpu / total * 1e6, general_cpu_us_per_message=cpu / args.messages * 1e6,
                    general_deliveries_per_s=total / wall, general_client_cpu_share=measure.client_cpu / measure.wall,
                    general_server_cpu_share=cpu / measure.wall, general_interference=measure.interference)

    async def rooms_burst(r):
        """Every user writes `room_messages` messages to its room, all at once; each reaches the room's other members."""
        m = args.room_messages
        deliveries, acks = Completion(n), Completion(n)
        batches = []
        for i, c in enumerate(users):
            room = c.room.decode()
            c.field = ROOM_FIELD + c.room + b'"'
            deliveries.arm(c, (size - 1) * m, f"#Q{r}:{room}#".encode())
            arm_acks(acks, c, m)
            batches.append((c.transport.send, [
                json.dumps({"type": "message", "room": room, "msg": f"#Q{r}:{room}# {i}.{j} {FILLER}"}).encode()
                for j in range(m)]))
        measure = Round(server)
        t0 = await measure.start()
        for send, texts in batches:
            for t in texts:
                send(TEXT, t)
        if why := await wait_all(args.timeout, stats, deliveries, acks):
            missing, short = shortfall(users)
            return dict(why=f"room burst: {why}", missing_deliveries=missing, receivers_short=short,
                        missing_acks=sum(max(0, c.ack_target - c.acks) for c in users))
        cpu = await measure.stop(max(deliveries.t_done, acks.t_done))
        messages = n * m
        total = messages * (size - 1)
        wall = (deliveries.t_done - t0) / 1e9
        return dict(**await recount("rooms"), rooms_cpu_s=cpu, rooms_cpu_source=measure.cpu_source, rooms_messages=messages, rooms_deliveries=total,
                    rooms_cpu_us_per_delivery=cpu / total * 1e6, rooms_cpu_us_per_message=cpu / messages * 1e6,
                    rooms_deliveries_per_s=total / wall, rooms_ack_wall_s=(acks.t_done - t0) / 1e9,
                    rooms_client_cpu_share=measure.client_cpu / measure.wall, rooms_server_cpu_share=cpu / measure.wall,
                    rooms_interference=measure.interference)

    plan = Plan(args)
    rounds = plan.kept
    for r in plan:
        row = dict(order="general,rooms" if r % 2 == 0 else "rooms,general")
        before = foreign_counts(everyone)
        for phase in row["order"].split(","):
            got = await (general(r) if phase == "general" else rooms_burst(r))
            if "why" in got:
                return dict(ok=False, failure=f"round {r}: {got.pop('why')}", **got, rounds=rounds)
            row.update(got)
        after = foreign_counts(everyone)
        unlabelled = sum(c.unlabelled for c in users)
        row.update(foreign_messages=after[0] - before[0], foreign_other=after[1] - before[1], unlabelled_deliveries=unlabelled,
                   ratio_per_delivery=row["rooms_cpu_us_per_delivery"] / row["general_cpu_us_per_delivery"],
                   ratio_per_message=row["rooms_cpu_us_per_message"] / row["general_cpu_us_per_message"])
        # The round counts as disturbed when either burst was.
        worst = max((row["general_interference"], row["rooms_interference"]), key=disturbance)
        row.update(worst)
        note = plan.keep(r, row)
        log(f"rooms round {r}{note}: rooms {row['rooms_cpu_us_per_delivery']:.2f} us/delivery, "
            f"{row['rooms_cpu_us_per_message']:.1f} us/message, {row['rooms_deliveries_per_s']:,.0f}/s; "
            f"general {row['general_cpu_us_per_delivery']:.2f} us/delivery; ratio {row['ratio_per_delivery']:.2f}; "
            f"frames of other rooms {row['foreign_messages']} messages + {row['foreign_other']} other; "
            f"server cpu {row['rooms_server_cpu_share']:.0%}/{row['general_server_cpu_share']:.0%}, "
            f"client cpu {row['rooms_client_cpu_share']:.0%}/{row['general_client_cpu_share']:.0%}{_others(row)}")
        wrong = []
        if row["foreign_messages"] or row["foreign_other"]:
            wrong.append(f"{row['foreign_messages']} room messages and {row['foreign_other']} other frames of a room "
                         "reached users not in it")
        for phase in ("general", "rooms"):
            if row[f"{phase}_wrong_counts"]:
                wrong.append(f"{phase} burst: {row[f'{phase}_wrong_counts']} users got more deliveries than sent to them "
                             f"(e.g. {row[f'{phase}_wrong_count_examples'][0]})")
        if unlabelled:
            wrong.append(f"{unlabelled} room messages delivered without their \"room\" field")
        if wrong:
            return dict(ok=False, failure=f"round {r}: " + "; ".join(wrong), foreign_examples=after[2],
                        failed_round=row, rounds=rounds, setup_s=setup_s)
        for c in users:
            c.unlabelled = 0
    await close_all(everyone, stats)
    result = plan.result()
    result.update(setup_s=setup_s, rooms=n_rooms, room_size=size, users=n)
    return result


# ---- several processes over Redis (the cluster scenario) ---------------------------------------------


def cpu_threads(pid):
    """(utime + stime in seconds, {thread id: schedstat run time in ns}) of one process."""
    coarse = ServerProc.cpu(SimpleNamespace(pid=pid))
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                threads[tid] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return coarse, threads


def cpu_between_threads(before, after):
    """CPU seconds between two cpu_threads() readings, and which counter gave them.

    Like cpu_between, but a thread that started in between does not spoil the precise figure (its whole run time
    falls in between): only a thread that ended in between does (its last run time is lost), and then, or when the
    two counters disagree, utime+stime (1/CLK_TCK resolution, counts ended threads) is used."""
    coarse = after[0] - before[0]
    if before[1].keys() <= after[1].keys():
        fine = (sum(after[1].values()) - sum(before[1].values())) / 1e9
        if fine >= 0 and abs(fine - coarse) <= 2.5 / CLK_TCK + 0.05 * coarse:
            return fine, "schedstat"
    return coarse, "stat"


class ProcGroup:
    """Several processes read as one (CPU summed); `settle` waits until none of them uses CPU."""

    def __init__(self, procs):
        self.procs = list(procs)

    def cpu(self):
        return sum(p.cpu() for p in self.procs)

    def alive(self):
        return all(p.alive() for p in self.procs)

    def readings(self):
        return [cpu_threads(p.pid) for p in self.procs]

    settle = ServerProc.settle


class VerifyingClient(Client):
    """A fan-out receiver that also checks every counted frame's sequence number: each message exactly once, in order.

    Counted frames carry `TAG SEQ ...`; a frame whose SEQ is not the count so far is a missing, duplicated or
    reordered delivery (counted in `bad`). A count above the target after the servers went idle is a duplicate."""

    def __init__(self, name, stats):
        super().__init__(name, stats)
        self.bad = 0
        self.bad_examples = []
        self.samples = None  # a list: append each delivery's latency (ns), from the send time after SEQ

    def on_ws_frame(self, transport, frame):
        tag = self.tag
        if tag is not None and frame.msg_type is TEXT:
            payload = frame.get_payload_as_bytes()
            i = payload.find(tag)
            if i >= 0:
                j = i + len(tag) + 1
                k = payload.index(b" ", j)
                seq = int(payload[j:k])
                if self.samples is not None:
                    self.samples.append(perf_ns() - int(payload[k + 1 : k + 20]))
                if seq != self.count:
                    self.bad += 1
                    if len(self.bad_examples) < 3:
                        self.bad_examples.append(f"{self.name}: got seq {seq} as delivery #{self.count}")
                self.count += 1
                if self.count == self.target:
                    self.done()
                return
        Client.on_ws_frame(self, transport, frame)


async def connect_spread(urls, names, stats, timeout=30.0):
    """Connect names round-robin over `urls` (receiver i to urls[i % len(urls)]); (clients, failures, url index of each)."""
    clients, failures, where = [], [], []
    for k, url in enumerate(urls):
        got, failed = await connect_many(url, names[k :: len(urls)], stats, timeout=timeout, factory=VerifyingClient)
        clients += got
        failures += failed
        where += [k] * len(got)
    return clients, failures, where


def redis_counters(client):
    """(total commands processed, PUBLISH calls) from the Redis server's INFO; None when unavailable."""
    if client is None:
        return None
    try:
        stats = client.info("stats")
        cmds = client.info("commandstats")
        return int(stats["total_commands_processed"]), int(cmds.get("cmdstat_publish", {}).get("calls", 0))
    except Exception:  # noqa: BLE001 - the figure is then missing, not wrong
        return None


async def scenario_cluster(args, server, stats):
    """Fan-out over several configurations side by side, one round of each in turn (order rotated per round).

    A configuration is one or more server processes (`urls`, `pids`); its receivers are spread round-robin
    over its processes, and its sender is on the first. Each round bracket reads the CPU of every process of
    the configuration separately, and of the Redis server (--bus-pid) apart; every receiver must get every
    message exactly once and in order, else the round is a failure (reported, not kept)."""
    import redis as redis_lib

    configs = json.loads(args.configs)
    bus = ServerProc(args.bus_pid) if args.bus_pid else None
    rclient = redis_lib.Redis.from_url(args.redis_url, socket_timeout=2) if args.redis_url else None
    everything = server  # every server process of every configuration
    setups = []
    for k, cfg in enumerate(configs):
        urls = cfg["urls"]
        n_recv = cfg.get("receivers", args.clients)
        receivers, f1, where = await connect_spread(urls, [f"c{k}r{i}" for i in range(n_recv)], stats)
        senders, f2 = await connect_many(urls[0], [f"c{k}sender"], stats)
        if f1 or f2:
            return connect_failed(f1 + f2)
        procs = [ServerProc(pid) for pid in cfg["pids"]]
        per_proc = [sum(1 for w in where if w == p) for p in range(len(urls))]
        setups.append(dict(name=cfg["name"], receivers=receivers, sender=senders[0], procs=procs, where=where,
                           per_proc=per_proc, clustered=bool(cfg.get("clustered")), messages=cfg.get("messages")))
        log(f"cluster: {cfg['name']}: {len(receivers)} receivers ({' + '.join(map(str, per_proc))}) and a sender connected")
    # A task is a configuration and how its sender sends: back to back (rate 0), or paced at --paced-rate messages/s
    # (fan-out configurations only), where each message is delivered on its own and its latency is measured.
    tasks = []
    for cfg in setups:
        tasks.append((cfg, 0.0, cfg["name"]))
        if args.paced_rate and cfg["receivers"]:
            tasks.append((cfg, args.paced_rate, cfg["name"] + "@paced"))
    n_tasks = len(tasks)
    kept, disturbed_aside, failed = [], [], []
    total_rounds = args.warmup + args.rounds + args.retries
    r = 0
    while len(kept) < args.rounds and r < total_rounds:
        order = [tasks[(r + i) % n_tasks] for i in range(n_tasks)]
        rows = {}
        for k_task, (cfg, pace, key) in enumerate(order):
            tag_s = f"#C{r}.{k_task}#"
            tag = tag_s.encode()
            n_msg = (args.paced_messages if pace else cfg["messages"]) or args.messages
            # TAG SEQ SEND-TIME FILLER: the same size either way; receivers read the send time only when paced.
            texts = [f"{tag_s} {i} {{:019d}} {FILLER}" for i in range(n_msg)]
            receivers, sender = cfg["receivers"], cfg["sender"]
            deliveries, acks = Completion(len(receivers)), Completion(1)
            samples = [] if pace else None
            for c in receivers:
                deliveries.arm(c, n_msg, tag)
                c.bad = 0
                c.bad_examples = []
                c.samples = samples
            sender.handler = _ack_counter
            acks.arm(sender, n_msg)
            group = ProcGroup(cfg["procs"])
            await everything.settle()
            await wait_quiet(everything)
            counters0 = redis_counters(rclient) if cfg["clustered"] else None  # before Redis's CPU is read: not in it
            cpu0 = group.readings()
            all0 = everything.cpu()
            bus0 = bus.cpu_precise() if bus else None
            bracket0 = time.monotonic()
            bus_coarse0 = bus.cpu() if bus else 0.0
            db0 = DB_PROC.cpu() if DB_PROC else 0.0
            machine0 = machine_times()
            ccpu0 = client_cpu()
            burst = None if pace else [t.format(perf_ns()).encode() for t in texts]
            t0 = perf_ns()
            send = sender.transport.send
            if pace:
                interval_ns = int(1e9 / pace)
                for i, t in enumerate(texts):
                    due = t0 + i * interval_ns
                    now = perf_ns()
                    if due > now:
                        await asyncio.sleep((due - now) / 1e9)
                    send(TEXT, t.format(perf_ns()).encode())
            else:
                for t in burst:
                    send(TEXT, t)
            why = await wait_all(args.timeout, stats, deliveries, acks)
            t_end = perf_ns() if why else max(deliveries.t_done, acks.t_done)
            wall = (t_end - t0) / 1e9
            ccpu = client_cpu() - ccpu0
            ours = ccpu + (everything.cpu() - all0) + ((bus.cpu() - bus_coarse0) if bus else 0.0) + \
                ((DB_PROC.cpu() - db0) if DB_PROC else 0.0)
            others = interference(wall, machine0, machine_times(), ours)
            await group.settle()
            await asyncio.sleep(0.1)  # late duplicates, if any, are read before the check
            cpu1 = group.readings()
            per_cpu = [cpu_between_threads(a, b) for a, b in zip(cpu0, cpu1)]
            bus_cpu = cpu_between(bus0, bus.cpu_precise())[0] if bus else None
            bracket = time.monotonic() - bracket0  # how long the CPU readings span (the round, then settling)
            counters1 = redis_counters(rclient) if cfg["clustered"] else None
            # Exactly once, in order: every receiver's count is the target and no sequence number was off.
            short = [c for c in receivers if c.count < c.target]
            extra = [c for c in receivers if c.count > c.target]
            bad = [c for c in receivers if c.bad]
            if why or short or extra or bad:
                by_proc = {}
                for c, w in zip(receivers, cfg["where"]):
                    if c.count != c.target or c.bad:
                        by_proc[f"process {w + 1}"] = by_proc.get(f"process {w + 1}", 0) + 1
                failure = dict(
                    round=r, config=key, why=why or "missing, duplicated or out-of-order deliveries",
                    missing_deliveries=sum(c.target - c.count for c in short), receivers_short=len(short),
                    extra_deliveries=sum(c.count - c.target for c in extra), receivers_with_extra=len(extra),
                    out_of_sequence=sum(c.bad for c in receivers), receivers_out_of_sequence=len(bad),
                    wrong_receivers_by_process=by_proc, acks=sender.count, expected_acks=n_msg,
                    examples=[e for c in bad[:3] for e in c.bad_examples][:5]
                    + [f"{c.name}: {c.count} of {c.target}" for c in (short + extra)[:3]],
                )
                failed.append(failure)
                log(f"cluster round {r} {key}: FAILED: {failure}")
                rows = None
                if len(failed) >= 2 or stats.problems() != (0, 0, 0):
                    return dict(ok=False, failure=f"round {r} ({key}): {failure['why']}", failed_rounds=failed,
                                rounds=kept, configs=[c["name"] for c in setups])
                break
            n = len(receivers) * n_msg
            cpu = sum(c for c, _ in per_cpu)
            ack_wall = (acks.t_done - t0) / 1e9
            row = dict(
                cpu_s=cpu, cpu_per_process_s=[c for c, _ in per_cpu], cpu_source=[s for _, s in per_cpu],
                cpu_readings=[(b[0] - a[0], (sum(b[1].values()) - sum(a[1].values())) / 1e9, len(a[1]), len(b[1]),
                               len(a[1].keys() - b[1].keys())) for a, b in zip(cpu0, cpu1)],
                receivers_per_process=cfg["per_proc"], deliveries=n, messages=n_msg,
                cpu_us_per_delivery=cpu / n * 1e6 if n else None,
                deliveries_per_s=n / ((deliveries.t_done - t0) / 1e9) if n and not pace else None, paced_rate=pace,
                cpu_us_per_message=cpu / n_msg * 1e6, messages_per_s=n_msg / ack_wall,
                ack_wall_s=ack_wall, wall_s=wall, bracket_s=bracket, server_cpu_share=cpu / wall,
                client_cpu_share=ccpu / wall, order=k_task,
            )
            if samples:
                samples.sort()
                row.update(p50_ms=_percentile(samples, 50) / 1e6, p99_ms=_percentile(samples, 99) / 1e6,
                           max_ms=samples[-1] / 1e6, latency_samples=len(samples))
            if bus_cpu is not None:
                row["bus_cpu_s"] = bus_cpu
            if counters0 and counters1:
                row["redis_commands"] = counters1[0] - counters0[0] - 1  # minus our own INFO commandstats
                row["redis_publishes"] = counters1[1] - counters0[1]
            row.update(others)
            rows[key] = row
            bus_note = f", redis {row['bus_cpu_s'] * 1e3:.2f} ms cpu" if "bus_cpu_s" in row else ""
            pub_note = f", {row['redis_publishes']} publishes" if "redis_publishes" in row else ""
            if not n:
                rate = f"{row['cpu_us_per_message']:.1f} us/message, {row['messages_per_s']:,.0f} acks/s"
            elif pace:
                rate = f"{row['cpu_us_per_delivery']:.3f} us/delivery, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
            else:
                rate = f"{row['cpu_us_per_delivery']:.3f} us/delivery, {row['deliveries_per_s']:,.0f}/s"
            log(f"cluster round {r} {key}: {rate} "
                f"({' + '.join(f'{c * 1e3:.1f}' for c in row['cpu_per_process_s'])} ms){bus_note}{pub_note}, "
                f"server cpu {row['server_cpu_share']:.0%}, "
                f"client cpu {row['client_cpu_share']:.0%}{_others(row)}")
        if rows is not None:
            if r < args.warmup:
                log(f"cluster round {r}: warm-up")
            elif max(disturbance(x) for x in rows.values()) > 0.10 and len(disturbed_aside) < args.retries:
                disturbed_aside.append(rows)
                log(f"cluster round {r}: DISTURBED by other processes: set aside, will run another")
            else:
                kept.append(rows)
        r += 1
    while len(kept) < args.rounds and disturbed_aside:
        kept.append(disturbed_aside.pop(0))
    await close_all([c for s in setups for c in s["receivers"] + [s["sender"]]], stats)
    result = dict(ok=not failed, rounds=kept, configs=[key for _, _, key in tasks], failed_rounds=failed,
                  disturbed_rounds_set_aside=len(disturbed_aside))
    if failed:
        result["failure"] = f"{len(failed)} round(s) with missing, duplicated or out-of-order deliveries"
    elif len(kept) < args.rounds:
        result["ok"] = False
        result["failure"] = f"only {len(kept)} of {args.rounds} rounds completed"
    return result


async def scenario_direct(args, server, stats):
    """`pairs` pairs; every sender sends `messages` direct messages to its partner, all at once."""
    n = args.pairs
    recipients, f1 = await connect_many(args.url, [f"drecv{i}" for i in range(n)], stats)
    senders, f2 = await connect_many(args.url, [f"dsend{i}" for i in range(n)], stats)
    if f1 or f2:
        return connect_failed(f1 + f2)
    senders.sort(key=lambda c: int(c.name[5:]))
    recipients.sort(key=lambda c: int(c.name[5:]))
    plan = Plan(args)
    rounds = plan.kept
    for r in plan:
        tag = f"#D{r}#".encode()
        deliveries, acks = Completion(n), Completion(n)
        batches = []
        for s, rc in zip(senders, recipients):
            deliveries.arm(rc, args.messages, tag)
            s.handler = _ack_counter
            acks.arm(s, args.messages)
            texts = [direct_frame(rc.name, f"#D{r}# {i} {FILLER}") for i in range(args.messages)]
            batches.append((s.transport.send, texts))
        measure = Round(server)
        t0 = await measure.start()
        for send, texts in batches:
            for t in texts:
                send(TEXT, t)
        if why := await wait_all(args.timeout, stats, deliveries, acks):
            missing, short = shortfall(recipients)
            missing_acks, _ = shortfall(senders)
            return dict(ok=False, failure=f"round {r}: {why}", missing_deliveries=missing,
                        recipients_short=short, missing_acks=missing_acks, rounds=rounds)
        cpu = await measure.stop(max(deliveries.t_done, acks.t_done))
        total = n * args.messages
        row = dict(
            cpu_s=cpu, cpu_source=measure.cpu_source, messages=total, cpu_us_per_message=cpu / total * 1e6,
            messages_per_s=total / measure.wall, delivery_wall_s=(deliveries.t_done - t0) / 1e9,
            ack_wall_s=(acks.t_done - t0) / 1e9, server_cpu_share=cpu / measure.wall,
            client_cpu_share=measure.client_cpu / measure.wall,
        )
        if measure.db_cpu is not None:
            row["db_cpu_us_per_message"] = measure.db_cpu / total * 1e6
        row.update(measure.interference)
        note = plan.keep(r, row)
        log(f"direct round {r}{note}: {row['cpu_us_per_message']:.2f} us/message, "
            f"{row['messages_per_s']:,.0f}/s (deliveries {row['delivery_wall_s']:.3f} s, acks {row['ack_wall_s']:.3f} s), "
            f"server cpu {row['server_cpu_share']:.0%}, client cpu {row['client_cpu_share']:.0%}{_others(row)}")
    await close_all(senders + recipients, stats)
    return plan.result()


def _others(row):
    d = disturbance(row)
    return f"; OTHER PROCESSES used {d:.0%} of a core" if d > 0.05 else ""


def _percentile(sorted_values, q):
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


async def scenario_latency(args, server, stats):
    """`clients` receivers; one sender sends `rate` group messages per second for `duration` s, send time in the text."""
    receivers, f1 = await connect_many(args.url, [f"lat{i}" for i in range(args.clients)], stats)
    senders, f2 = await connect_many(args.url, ["latsender"], stats)
    if f1 or f2:
        return connect_failed(f1 + f2)
    sender = senders[0]
    interval_ns = int(1e9 / args.rate)
    total = int(args.rate * args.duration)
    plan = Plan(args)
    rounds = plan.kept
    for r in plan:
        tag = f"#L{r}#".encode()
        samples = []

        def handler(client, payload, tag=tag, lt=len(tag), append=samples.append):
            i = payload.find(tag)
            if i >= 0:
                append(perf_ns() - int(payload[i + lt : i + lt + 19]))
                client.count += 1
                if client.count == client.target:
                    client.done()

        deliveries, acks = Completion(len(receivers)), Completion(1)
        for c in receivers:
            c.handler = handler
            deliveries.arm(c, total)
        sender.handler = _ack_counter
        acks.arm(sender, total)
        prefix = f"#L{r}#"
        send = sender.transport.send
        measure = Round(server)
        t0 = await measure.start()
        late = 0
        for seq in range(total):
            due = t0 + seq * interval_ns
            now = perf_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            elif now - due > interval_ns:
                late += 1
            send(TEXT, group_frame(f"{prefix}{perf_ns():019d} {seq} {FILLER}"))
        t_sent = perf_ns()
        if why := await wait_all(args.timeout, stats, deliveries, acks):
            missing, short = shortfall(receivers)
            return dict(ok=False, failure=f"round {r}: {why}", missing_deliveries=missing,
                        receivers_short=short, acks=sender.count, rounds=rounds)
        cpu = await measure.stop(max(deliveries.t_done, acks.t_done))
        samples.sort()
        row = dict(
            p50_ms=_percentile(samples, 50) / 1e6, p99_ms=_percentile(samples, 99) / 1e6,
            p999_ms=_percentile(samples, 99.9) / 1e6, max_ms=samples[-1] / 1e6, samples=len(samples),
            send_rate=total / ((t_sent - t0) / 1e9), sends_late=late, cpu_s=cpu, cpu_source=measure.cpu_source,
            cpu_us_per_delivery=cpu / len(samples) * 1e6, server_cpu_share=cpu / measure.wall,
            client_cpu_share=measure.client_cpu / measure.wall,
        )
        row.update(measure.interference)
        note = plan.keep(r, row)
        log(f"latency round {r}{note}: p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms, "
            f"max {row['max_ms']:.1f} ms, {row['send_rate']:.0f} msg/s sent ({late} late), "
            f"server cpu {row['server_cpu_share']:.0%}, client cpu {row['client_cpu_share']:.0%}{_others(row)}")
    await close_all(receivers + senders, stats)
    return plan.result()


def _idle_name(args, i):
    # shared: one user with many connections (no presence traffic); distinct: one user per connection.
    return "idle" if args.names == "shared" else f"idle{i}"


async def scenario_memory(args, server, stats):
    """RSS growth per idle connection at each step (connections added in steps, each step measured once settled)."""
    steps = sorted(int(s) for s in args.steps.split(","))
    warm, failures = await connect_many(args.url, [f"warm{i}" for i in range(20)], stats)
    if failures:
        return connect_failed(failures)
    await close_all(warm, stats)
    stats.expect_disconnect = False
    await server.settle(quiet=0.5)
    rss0 = server.rss_kb()
    log(f"memory: RSS before {rss0 / 1024:.1f} MiB")
    clients = []
    result = dict(ok=True, names=args.names, rss_before_kb=rss0, steps={})
    for step in steps:
        t0 = time.monotonic()
        new, failures = await connect_many(
            args.url, [_idle_name(args, i) for i in range(len(clients), step)], stats, concurrency=args.concurrency,
            timeout=args.timeout,
        )
        clients += new
        connect_s = time.monotonic() - t0
        settle_s = await server.settle(quiet=1.0, timeout=args.timeout)
        open_now = sum(1 for c in clients if c.open)
        rss = server.rss_kb()
        per = (rss - rss0) / step
        result["steps"][str(step)] = dict(
            rss_kb=rss, kb_per_connection=per, open=open_now, connect_failures=len(failures),
            connect_failure_examples=failures[:5], connect_s=connect_s, settle_s=settle_s,
        )
        log(f"memory: {open_now} open of {step}: RSS {rss / 1024:.1f} MiB, {per:.1f} KB per connection "
            f"(connect {connect_s:.1f} s, settle {settle_s:.1f} s, {len(failures)} failed)")
        if failures or open_now < step:
            result["ok"] = False
            result["failure"] = f"at {step}: {open_now} open, {len(failures)} connects failed"
            break
    await close_all(clients, stats)
    return result


async def scenario_seed(args, server, stats):
    """Give a fresh server of ours some history through the real protocol (not measured): `users` users, `rooms` rooms
    (room k created by user k; every user also joins two more), `seed_messages` messages (20% general, 60% to the
    sender's rooms, 20% direct to the next user), each user keeping `window` unacknowledged, then read markers for
    general, each room and the direct conversation of every user, at ids spread over the history."""
    n, n_rooms, total, window = args.clients, args.rooms, args.seed_messages, args.window
    t_start = time.monotonic()
    users, failures = await connect_many(args.url, [f"seed{i}" for i in range(n)], stats, timeout=args.timeout)
    if failures:
        return connect_failed(failures)
    users.sort(key=lambda c: int(c.name[4:]))
    rooms = [f"seedroom{k}" for k in range(n_rooms)]
    member = [sorted({i % n_rooms, (i + 7) % n_rooms, (i * 3 + 1) % n_rooms}) for i in range(n)] if n_rooms else [[]] * n
    top = [0]

    def acks_then(client, payload):
        if b'"ack"' in payload[:16]:
            j = payload.find(b'"id":')
            if j >= 0:
                k = j + 5
                e = k
                while payload[e : e + 1].isdigit():
                    e += 1
                if e > k:
                    top[0] = max(top[0], int(payload[k:e]))
            client.count += 1
            client.next_step()
            if client.count == client.target and client.done is not None:
                client.done()
        elif b'"read"' in payload[:16]:
            client.count += 1
            client.next_step()
            if client.count == client.target and client.done is not None:
                client.done()

    async def run_step(what, frames_of, window_of):
        """Every user sends its frames, at most `window_of` unanswered; waits for an answer to each."""
        done = Completion(n)
        for i, c in enumerate(users):
            frames = frames_of(i)
            c.handler = acks_then
            done.arm(c, len(frames))
            if not frames:
                done._one()
            it = iter(frames)

            def next_step(c=c, it=it):
                frame = next(it, None)
                if frame is not None:
                    c.transport.send(TEXT, frame)

            c.next_step = next_step
            for _ in range(window_of):
                next_step()
        if why := await wait_all(max(args.timeout, 300), stats, done):
            return f"seed ({what}): {why}"
        return None

    # The rooms: creators first, then every other membership.
    creates = lambda i: [json.dumps({"type": "create", "room": rooms[i]}).encode()] if i < n_rooms else []  # noqa: E731
    joins = lambda i: [json.dumps({"type": "join", "room": rooms[k]}).encode() for k in member[i] if k != i]  # noqa: E731
    for what, frames_of in (("create", creates), ("join", joins)):
        if why := await run_step(what, frames_of, 1):
            return dict(ok=False, failure=why)

    per_user = total // n
    extra = total - per_user * n

    def messages(i):
        out = []
        for j in range(per_user + (1 if i < extra else 0)):
            k = j % 10
            text = f"seed {i}.{j} {FILLER}"
            if k < 2 or not member[i]:
                out.append(text.encode())
            elif k < 8:
                out.append(json.dumps({"type": "message", "room": rooms[member[i][j % len(member[i])]], "msg": text}).encode())
            else:
                out.append(json.dumps({"to": users[(i + 1) % n].name, "msg": text}).encode())
        return out

    t_msgs = time.monotonic()
    if why := await run_step("messages", messages, window):
        return dict(ok=False, failure=why)
    msgs_s = time.monotonic() - t_msgs

    def reads(i):
        at = lambda salt: max(1, int(top[0] * (0.5 + ((i * 37 + salt * 11) % 50) / 100)))  # noqa: E731
        out = [json.dumps({"type": "read", "room": "general", "id": at(0)}).encode()]
        out += [json.dumps({"type": "read", "room": rooms[k], "id": at(k + 1)}).encode() for k in member[i]]
        out.append(json.dumps({"type": "read", "with": users[(i + 1) % n].name, "id": at(99)}).encode())
        return out

    if why := await run_step("read markers", reads, 4):
        return dict(ok=False, failure=why)
    await server.settle(timeout=args.timeout)
    await close_all(users, stats)
    seconds = time.monotonic() - t_start
    log(f"seed: {n} users, {n_rooms} rooms, {total:,} messages (ids up to {top[0]:,}; {total / msgs_s:,.0f}/s), "
        f"{sum(len(m) + 2 for m in member):,} read markers in {seconds:.1f} s")
    return dict(ok=True, users=n, rooms=n_rooms, messages=total, last_id=top[0], seconds=seconds, messages_s=msgs_s)


class HerdMember:
    """What one herd client knows across its connections: its resume token, the last id it saw, every tagged id."""

    def __init__(self, name):
        self.name = name
        self.resume = None
        self.last = 0  # the highest tagged id seen
        self.seen = set()
        self.duplicates = 0
        self.out_of_order = 0
        self.client = None
        self.attempts = 0
        self.refusals = []  # close frames and failed connects while reconnecting
        self.dropped = 0

    def see(self, mid):
        if mid in self.seen:
            self.duplicates += 1
            return
        if mid < self.last:
            self.out_of_order += 1
        self.seen.add(mid)
        self.last = max(self.last, mid)


HERD_TAG = b"#H# "


class HerdClient(Client):
    """A herd connection: records its guest resume token and every tagged message id, live or in a history event."""

    def __init__(self, member, stats):
        super().__init__(member.name, stats)
        self.member = member

    def on_ws_frame(self, transport, frame):
        kind = frame.msg_type
        if kind is TEXT:
            payload = frame.get_payload_as_bytes()
            head = payload[:20]
            if b'"history"' in head:
                if HERD_TAG in payload:
                    for m in json.loads(payload).get("messages", ()):
                        if isinstance(m, dict) and m.get("type") == "message" and str(m.get("msg", "")).startswith("#H# "):
                            self.member.see(int(m["id"]))
            elif b'"welcome"' in head:  # its conversation list may quote a tagged message: not a delivery
                self.member.resume = json.loads(payload).get("resume") or self.member.resume
            elif head.startswith(b'{"type":"message"') and HERD_TAG in payload:
                j = payload.index(b'"id":') + 5
                k = j
                while payload[k : k + 1].isdigit():
                    k += 1
                self.member.see(int(payload[j:k]))
                return
        elif kind is CLOSE:
            self.member.refusals.append(f"close {frame.get_close_code()} {frame.get_close_message()!r}")
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            self.open = False
            return
        Client.on_ws_frame(self, transport, frame)

    def on_ws_disconnected(self, transport):
        if self.open and not self.stats.expect_disconnect:
            self.member.dropped += 1
        self.open = False


async def scenario_herd(args, server, stats):
    """Reconnect herd: `clients` connections of distinct guests see `herd_before` group messages; the server is killed
    (--restart-signal) and started again (--restart-cmd, same port and database); a writer sends `herd_outage` messages
    that the herd misses, then every herd client reconnects at once with ?since=<last id it saw>&resume=<its token>
    while the writer sends `herd_after` more, as fast as acks allow. Time until all are connected and until all are
    caught up; every client must have every message exactly once and in order (missing/duplicated/out-of-order: 0)."""
    import signal as signal_lib
    import socket
    import subprocess

    url = args.url
    members = [HerdMember(f"herd{i}") for i in range(args.clients)]
    writer = HerdMember("herdwriter")
    acked = []

    async def connect(member, query="", timeout=args.timeout):
        _, client = await ws_connect(lambda: HerdClient(member, stats), url + ws_path(member.name, query),
                                     websocket_handshake_timeout=timeout, read_buffer_init_size=4096)
        member.client = client
        return client

    async def ready(clients, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(c.ready or not c.open for c in clients):
            await asyncio.sleep(0.02)
        return all(c.ready for c in clients)

    def ack_ids(client, payload):
        if b'"ack"' in payload[:16]:
            j = payload.index(b'"id":') + 5
            k = j
            while payload[k : k + 1].isdigit():
                k += 1
            acked.append(int(payload[j:k]))
            client.count += 1
            if client.next is not None:
                client.next()

    async def write(n, phase):
        """n group messages from the writer, each sent once the previous one is acknowledged; returns their ids."""
        c = writer.client
        start = len(acked)
        done = asyncio.get_running_loop().create_future()
        texts = iter([f"#H# {phase} {i} {FILLER}" for i in range(n)])

        def nxt():
            t = next(texts, None)
            if t is None:
                if not done.done():
                    done.set_result(None)
            else:
                c.send(t)

        c.handler, c.next = ack_ids, nxt
        nxt()
        await asyncio.wait_for(done, args.timeout)
        return acked[start:]

    async def caught_up(expected, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(expected <= m.seen for m in members):
                return perf_ns()
            await asyncio.sleep(0.02)
        return None

    # 1. Everyone connected, and the messages before the restart seen.
    sem = asyncio.Semaphore(args.concurrency)

    async def first(m):
        async with sem:
            return await connect(m)

    try:
        clients = await asyncio.gather(*(first(m) for m in members + [writer]))
    except Exception as e:  # noqa: BLE001
        return dict(ok=False, failure=f"connecting the herd: {type(e).__name__}: {e}")
    if not await ready(clients, args.timeout):
        return dict(ok=False, failure="the herd's connect-time history did not all arrive")
    before = set(await write(args.herd_before, "before"))
    if await caught_up(before, args.timeout) is None:
        return dict(ok=False, failure="the messages before the restart did not reach every client")
    guests = sum(1 for m in members if m.resume)
    log(f"herd: {len(members)} connected ({guests} with a resume token), {len(before)} messages seen by all; "
        f"restarting the server (SIG{args.restart_signal})")

    # 2. The restart: kill, wait until every socket saw it, start again on the same port and database.
    stats.expect_disconnect = True
    t_kill = time.monotonic()
    os.kill(args.pid, getattr(signal_lib, "SIG" + args.restart_signal))
    while any(m.client.open for m in members + [writer]) and time.monotonic() - t_kill < args.timeout:
        await asyncio.sleep(0.02)
    while ServerProc(args.pid).alive() and time.monotonic() - t_kill < args.timeout:
        await asyncio.sleep(0.02)
    down_s = time.monotonic() - t_kill
    with open(args.restart_log, "ab") as logf:
        proc = subprocess.Popen(json.loads(args.restart_cmd), stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONHASHSEED="0", PYTHONUNBUFFERED="1"))
    with open(args.new_pid_file, "w") as f:
        f.write(str(proc.pid))
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    t_start = time.monotonic()
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() - t_start > args.timeout:
                return dict(ok=False, failure=f"the restarted server did not listen (exit {proc.poll()})")
            await asyncio.sleep(0.02)
    start_s = time.monotonic() - t_start
    server = ServerProc(proc.pid)
    stats.expect_disconnect = False

    # 3. Messages the herd misses while it is away.
    await connect(writer, f"resume={writer.resume}")
    if not await ready([writer.client], args.timeout):
        return dict(ok=False, failure="the writer could not reconnect")
    outage = await write(args.herd_outage, "outage")

    # 4. Everyone reconnects at once with ?since=, while the writer goes on.
    async def again(m):
        delay = 0.05
        deadline = time.monotonic() + args.timeout
        while True:
            m.attempts += 1
            try:
                c = await connect(m, f"since={m.last}&resume={m.resume}")
                while c.open and not c.ready:
                    await asyncio.sleep(0.01)
                if c.ready:
                    return perf_ns()
            except Exception as e:  # noqa: BLE001 - retried, and counted
                m.refusals.append(f"{type(e).__name__}: {str(e)[:80]}")
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(delay * (0.5 + (hash(m.name) % 100) / 100))
            delay = min(1.0, delay * 2)

    cpu0 = server.cpu_precise()
    t0 = perf_ns()
    herd = asyncio.ensure_future(asyncio.gather(*(again(m) for m in members)))
    after = await write(args.herd_after, "after")
    connected = await herd
    expected = set(outage) | set(after)
    t_caught = await caught_up(expected, args.timeout)
    await server.settle(timeout=args.timeout)
    await asyncio.sleep(0.5)  # late duplicates, if any
    cpu, source = cpu_between(cpu0, server.cpu_precise())
    missing = sum(len(expected - m.seen) for m in members)
    extra = sum(len({i for i in m.seen if i > max(before, default=0)} - expected) for m in members)
    dup = sum(m.duplicates for m in members)
    disorder = sum(m.out_of_order for m in members)
    dropped = sum(m.dropped for m in members)
    failed = sum(1 for t in connected if t is None)
    retries = sum(m.attempts - 1 for m in members)
    refusals = [f"{m.name}: {r}" for m in members for r in m.refusals][:5]
    all_connected_s = (max(t for t in connected if t) - t0) / 1e9 if any(connected) else None
    caught_s = (t_caught - t0) / 1e9 if t_caught else None
    result = dict(
        ok=not (missing or extra or dup or disorder or dropped or failed or t_caught is None), clients=len(members),
        messages_before=len(before), messages_outage=len(outage), messages_after=len(after), down_s=down_s,
        restart_listen_s=start_s, all_connected_s=all_connected_s, caught_up_s=caught_s, missing=missing,
        unexpected=extra, duplicated=dup, out_of_order=disorder, dropped_after_reconnect=dropped,
        reconnect_failures=failed, reconnect_retries=retries, refusal_examples=refusals, server_cpu_s=cpu,
        cpu_source=source, new_pid=proc.pid,
    )
    log(f"herd: {len(members)} reconnected with ?since= in {all_connected_s or 0:.2f} s ({retries} retries, {failed} "
        f"gave up), all caught up in {caught_s or 0:.2f} s; {len(outage)} messages during the outage, {len(after)} "
        f"during the herd; missing {missing}, duplicated {dup}, out of order {disorder}, unexpected {extra}, dropped "
        f"{dropped}; server cpu {cpu:.2f} s; restart: down {down_s:.2f} s, listening after {start_s:.2f} s")
    if not result["ok"]:
        result["failure"] = (f"missing {missing}, duplicated {dup}, out of order {disorder}, unexpected {extra}, dropped "
                             f"{dropped}, gave up {failed}" + ("" if t_caught else ", not all caught up in time"))
    stats.expect_disconnect = True
    await close_all([m.client for m in members + [writer] if m.client is not None], stats)
    return result


def mysql_status(url):
    """InnoDB row-lock counters and commits of the MariaDB server (SHOW GLOBAL STATUS), or {} without one."""
    if not url:
        return {}
    import pymysql
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username or "root", password=u.password or "",
                           connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_time', 'Innodb_row_lock_waits', "
                        "'Com_commit', 'Handler_commit')")
            return {k: int(v) for k, v in cur.fetchall()}
    finally:
        conn.close()


async def scenario_ceiling(args, server, stats):
    """Cluster ceiling: `clients` senders spread over the configuration's processes, each sending direct messages to a
    partner on the next process, at most `window` unacknowledged (so as fast as acks allow), for `duration` s.
    Messages/s committed (acks) and delivered, each process's CPU share, Redis's and mariadbd's, and the InnoDB row-lock
    wait time (the chat_meta row that assigns ids at commit) per second of wall time."""
    cfg = json.loads(args.configs)[0]
    urls, n = cfg["urls"], args.clients
    procs = [ServerProc(pid) for pid in cfg["pids"]]
    bus = ServerProc(args.bus_pid) if args.bus_pid else None
    clients, failures = [], []
    for k, url in enumerate(urls):
        got, failed = await connect_many(url, [f"ceil{i}" for i in range(k, n, len(urls))], stats, timeout=args.timeout)
        clients += got
        failures += failed
    if failures:
        return connect_failed(failures)
    clients.sort(key=lambda c: int(c.name[4:]))
    # partner of i: i+1, which sits on the next process (round-robin), so half the deliveries or more cross Redis
    stop = [False]
    acks = [0]
    delivered = [0]
    tag = b"#K#"

    def on_frame(client, payload):
        if b'"ack"' in payload[:16]:
            acks[0] += 1
            if not stop[0]:
                client.transport.send(TEXT, client.frame)
        elif tag in payload:
            delivered[0] += 1

    for i, c in enumerate(clients):
        c.frame = direct_frame(clients[(i + 1) % len(clients)].name, f"#K# {i} {FILLER}")
        c.handler = on_frame
    group = ProcGroup(procs)
    await group.settle()
    await wait_quiet(group)
    st0 = mysql_status(args.mysql_url)
    cpu0 = group.readings()
    bus0 = bus.cpu() if bus else None
    db0 = DB_PROC.cpu() if DB_PROC else None
    t0 = time.monotonic()
    for c in clients:
        for _ in range(args.window):
            c.transport.send(TEXT, c.frame)
    await asyncio.sleep(args.duration)
    wall = time.monotonic() - t0
    a1, d1 = acks[0], delivered[0]
    cpu1 = group.readings()
    bus1 = bus.cpu() if bus else None
    db1 = DB_PROC.cpu() if DB_PROC else None
    st1 = mysql_status(args.mysql_url)
    stop[0] = True
    await group.settle(timeout=args.timeout)
    per = [cpu_between_threads(a, b)[0] / wall for a, b in zip(cpu0, cpu1)]
    lock_ms = st1.get("Innodb_row_lock_time", 0) - st0.get("Innodb_row_lock_time", 0)
    result = dict(
        ok=True, processes=len(procs), clients=len(clients), window=args.window, wall_s=wall,
        committed_per_s=a1 / wall, delivered_per_s=d1 / wall, cpu_share_per_process=per,
        redis_cpu_share=(bus1 - bus0) / wall if bus else None, mariadb_cpu_share=(db1 - db0) / wall if DB_PROC else None,
        row_lock_waits_per_s=(st1.get("Innodb_row_lock_waits", 0) - st0.get("Innodb_row_lock_waits", 0)) / wall,
        row_lock_wait_share=lock_ms / 1000 / wall, commits_per_s=(st1.get("Com_commit", 0) - st0.get("Com_commit", 0)) / wall,
    )
    shares = dict(python=max(per), redis=result["redis_cpu_share"] or 0, mariadb=result["mariadb_cpu_share"] or 0,
                  row_lock=result["row_lock_wait_share"])
    top = max(shares, key=shares.get)
    # Below 80% of a core (or of the time, for the lock) nothing is saturated: the senders wait on round trips.
    result["first_to_saturate"] = top if shares[top] >= 0.8 else f"none ({top} {shares[top]:.0%}): latency-bound"
    log(f"ceiling {len(procs)} process(es): {result['committed_per_s']:,.0f} committed/s, {result['delivered_per_s']:,.0f} "
        f"delivered/s; cpu per process {', '.join(f'{x:.0%}' for x in per)}; redis {shares['redis']:.0%}, mariadbd "
        f"{shares['mariadb']:.0%}; row-lock waits {result['row_lock_waits_per_s']:,.0f}/s, waiting "
        f"{shares['row_lock']:.2f} s per s; highest: {result['first_to_saturate']}")
    await close_all(clients, stats)
    return result


async def scenario_open(args, server, stats):
    """`clients` connects (distinct users), `concurrency` handshakes in flight: seconds until every one is upgraded,
    and until every one is ready (ours: its connect-time history arrived; Socket.IO: its namespace connect `40`)."""
    names = [f"open{i}" for i in range(args.clients)]
    await server.settle()
    await wait_quiet(server)
    cpu0 = server.cpu_precise()
    machine0 = machine_times()
    ccpu0 = client_cpu()
    db0 = DB_PROC.cpu() if DB_PROC else 0.0
    t0 = perf_ns()
    marks = {}
    clients, failures = await connect_many(args.url, names, stats, concurrency=args.concurrency, timeout=args.timeout,
                                           marks=marks)
    t_ready = perf_ns()
    t_upgraded = marks.get("upgraded", t_ready)
    machine1 = machine_times()
    ours = (server.cpu() - cpu0[0]) + (client_cpu() - ccpu0) + ((DB_PROC.cpu() - db0) if DB_PROC else 0.0)
    seconds = (t_ready - t0) / 1e9
    settle_s = await server.settle(timeout=args.timeout)
    cpu, source = cpu_between(cpu0, server.cpu_precise())
    rss = server.rss_kb()
    open_now = sum(1 for c in clients if c.open)
    log(f"open: {len(clients)} of {args.clients} ready in {seconds:.3f} s ({args.concurrency} in flight), "
        f"{len(failures)} failed; server cpu {cpu:.2f} s ({cpu / max(1, len(clients)) * 1e6:.0f} us per connect), "
        f"busy {settle_s:.1f} s more; RSS {rss / 1024:.1f} MiB; {open_now} still open")
    await close_all(clients, stats)
    result = dict(
        **interference(seconds, machine0, machine1, ours), ok=not failures, seconds=seconds,
        upgraded_s=(t_upgraded - t0) / 1e9, opened=len(clients), failures=len(failures), failure_examples=failures[:5],
        server_cpu_s=cpu, cpu_source=source, cpu_us_per_connect=cpu / max(1, len(clients)) * 1e6, busy_after_s=settle_s,
        rss_kb=rss, open_after=open_now,
    )
    if failures:
        result["failure"] = f"{len(failures)} of {args.clients} connects failed"
    return result


async def scenario_storm(args, server, stats):
    """`clients` connects (distinct users) started at once; seconds until every one is upgraded (101 received)."""
    t_done = []
    failures = []

    async def one(name):
        try:
            _, client = await ws_connect(
                lambda: Client(name, stats), args.url + ws_path(name), websocket_handshake_timeout=args.timeout,
                read_buffer_init_size=4096,
            )
            t_done.append(perf_ns())
            return client
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: {type(e).__name__}: {e}")
            return None

    await server.settle()
    await wait_quiet(server)
    cpu0 = server.cpu_precise()
    machine0 = machine_times()
    ccpu0 = client_cpu()
    db0 = DB_PROC.cpu() if DB_PROC else 0.0
    t0 = perf_ns()
    clients = await asyncio.gather(*(one(f"storm{i}") for i in range(args.clients)))
    machine1 = machine_times()
    ours = (server.cpu() - cpu0[0]) + (client_cpu() - ccpu0) + ((DB_PROC.cpu() - db0) if DB_PROC else 0.0)
    clients = [c for c in clients if c is not None]
    t_done.sort()
    seconds = (t_done[-1] - t0) / 1e9 if t_done else None
    half = (t_done[len(t_done) // 2] - t0) / 1e9 if t_done else None
    settle_s = await server.settle(timeout=args.timeout)
    cpu, source = cpu_between(cpu0, server.cpu_precise())
    open_now = sum(1 for c in clients if c.open)
    log(f"storm: {len(clients)} of {args.clients} upgraded, all by {seconds or 0:.3f} s, half by {half or 0:.3f} s, "
        f"{len(failures)} failed; server busy {settle_s:.1f} s more, cpu {cpu:.2f} s; {open_now} still open")
    await close_all(clients, stats)
    others = interference(seconds, machine0, machine1, ours) if seconds else {}
    result = dict(
        **others, ok=not failures, seconds=seconds, half_s=half, upgraded=len(clients), failures=len(failures),
        failure_examples=failures[:5], server_cpu_s=cpu, cpu_source=source, busy_after_s=settle_s, open_after=open_now,
    )
    if failures:
        result["failure"] = f"{len(failures)} of {args.clients} connects failed"
    return result


SCENARIOS = dict(ceiling=scenario_ceiling, herd=scenario_herd, seed=scenario_seed, open=scenario_open, cluster=scenario_cluster, fanout=scenario_fanout, rooms=scenario_rooms, direct=scenario_direct, latency=scenario_latency, memory=scenario_memory, storm=scenario_storm)


async def amain(args):
    global DB_PROC, WAIT_HISTORY, SIO, WAIT_READY
    WAIT_HISTORY = args.wait_history
    SIO = args.protocol == "socketio"
    WAIT_READY = WAIT_HISTORY or SIO
    QUIET["per_round"], QUIET["budget"] = args.quiet_wait, args.quiet_budget
    if args.scenario in ("cluster", "ceiling"):
        server = ProcGroup(ServerProc(pid) for cfg in json.loads(args.configs) for pid in cfg["pids"])
    else:
        server = ServerProc(args.pid)
    if args.db_pid:
        DB_PROC = ServerProc(args.db_pid)
    stats = Stats()
    t0 = time.monotonic()
    try:
        result = await SCENARIOS[args.scenario](args, server, stats)
    except Exception as e:  # noqa: BLE001 - the orchestrator reports it
        result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
    result["elapsed_s"] = time.monotonic() - t0
    result["quiet_waited_s"] = QUIET["waited"]
    result.update(stats.as_dict())
    if not (ServerProc(result["new_pid"]) if "new_pid" in result else server).alive():
        result["ok"] = False
        result["failure"] = (result.get("failure") or "") + " (server process died)"
    if stats.errors or stats.closes or stats.disconnects:
        result["ok"] = False
        result.setdefault("failure", "the server sent errors or closed connections")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--url", default=None, help="ws://127.0.0.1:PORT (every scenario but cluster)")
    p.add_argument("--pid", type=int, default=None, help="the server's process id (CPU and RSS are read from /proc)")
    p.add_argument("--configs", default=None,
                   help='cluster: JSON list of {"name", "urls": [ws://...], "pids": [...], "clustered": bool}')
    p.add_argument("--paced-rate", type=float, default=0.0,
                   help="cluster: also run each fan-out configuration with the sender paced at this many messages/s")
    p.add_argument("--paced-messages", type=int, default=100, help="cluster: messages per paced round")
    p.add_argument("--bus-pid", type=int, default=None, help="cluster: the Redis server's process id (its CPU is read apart)")
    p.add_argument("--redis-url", default=None, help="cluster: the Redis server, for its command counters")
    p.add_argument("--db-pid", type=int, default=None, help="the database server's process id: its CPU is reported apart")
    p.add_argument("--wait-history", action="store_true", help="wait for each connection's history event before measuring")
    p.add_argument("--protocol", choices=("plain", "socketio"), default="plain",
                   help="plain: /ws/NAME, our frames (ours and the naive and websockets peers); socketio: Engine.IO 4 / "
                        "Socket.IO 5 over the websocket transport (/socket.io/?EIO=4&transport=websocket&name=NAME)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="seconds a round may wait for unrelated processes to go quiet before it starts")
    p.add_argument("--quiet-budget", type=float, default=90.0, help="seconds all rounds together may wait for quiet")
    p.add_argument("--retries", type=int, default=3, help="extra rounds allowed to replace rounds disturbed by other processes")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--messages", type=int, default=None, help="fanout and rooms (its general burst): 300; direct: 100 per pair")
    p.add_argument("--room-size", type=int, default=10, help="rooms: members per named room (--clients must be a multiple)")
    p.add_argument("--room-messages", type=int, default=10, help="rooms: messages each user writes to its room per round")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--steps", default="5000,10000")
    p.add_argument("--names", choices=("shared", "distinct"), default="shared", help="memory: user names of the idle connections")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while building the idle set")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--rooms", type=int, default=20, help="seed: rooms")
    p.add_argument("--mysql-url", default=None, help="ceiling: the MariaDB server, for its row-lock counters")
    p.add_argument("--herd-before", type=int, default=20, help="herd: messages every client sees before the restart")
    p.add_argument("--herd-outage", type=int, default=20, help="herd: messages sent after the restart, before the herd")
    p.add_argument("--herd-after", type=int, default=50, help="herd: messages sent while the herd reconnects")
    p.add_argument("--restart-signal", default="KILL", help="herd: the signal that stops the server (KILL or TERM)")
    p.add_argument("--restart-cmd", default=None, help="herd: JSON argv that starts the server again (same port)")
    p.add_argument("--restart-log", default=os.devnull, help="herd: the restarted server's log")
    p.add_argument("--new-pid-file", default=os.devnull, help="herd: where the restarted server's pid is written")
    p.add_argument("--seed-messages", type=int, default=50000, help="seed: messages")
    p.add_argument("--window", type=int, default=16, help="seed, ceiling: unacknowledged messages per sender")
    args = p.parse_args()
    grouped = args.scenario in ("cluster", "ceiling")
    if grouped != (args.configs is not None) or (not grouped and None in (args.pid, args.url)):
        p.error("cluster needs --configs (instead of --url and --pid); every other scenario needs --url and --pid")
    if args.messages is None:
        args.messages = 100 if args.scenario == "direct" else 300
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gc.freeze()
    result = uvloop.run(amain(args))
    print(json.dumps(result), flush=True)
    # Exit without tearing down thousands of transports one by one.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
