"""The benchmark: our server (SQLite, MariaDB) and two peers side by side, one pinned core each for server and load.

    python3 bench/run.py            # everything (about 20 minutes)
    python3 bench/run.py --quick    # fewer rounds, shorter latency runs (about 7 minutes)
    python3 bench/run.py --servers sqlite,naive --scenarios fanout,direct
    python3 bench/run.py --scenarios cluster    # fan-out with 1 and 2 processes over Redis only
    python3 bench/run.py --scenarios rooms --servers sqlite,mariadb   # named rooms against general, ours only
    python3 bench/run.py --scenarios herd --servers sqlite,mariadb    # 10,000 clients reconnecting after a restart
    python3 bench/run.py --scenarios ceiling --cluster-db mariadb     # 1, 2, 4 processes sharing MariaDB and Redis
    python3 bench/run.py --servers socketio --scenarios open --set open.clients=200   # small sizes: --set

Each server runs pinned to one core (`taskset -c 1`), the load client (bench/loadgen.py, picows on uvloop)
to the other (`taskset -c 0`), and so does this script. Everything is on 127.0.0.1. Servers are killed at
the end even on error or Ctrl-C; the MariaDB databases the bench creates are dropped; the cluster scenario's
private redis-server is stopped and its Redis keys (under a prefix unique to the run) are deleted.
See bench/README.md.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

SERVERS = {
    "sqlite": "ours/SQLite",
    "mariadb": "ours/MariaDB",
    "naive": "naive seed",
    "websockets": "websockets",
    "socketio": "Flask-SocketIO",
}
PEERS = ("naive", "websockets", "socketio")
SCENARIOS = ("fanout", "rooms", "direct", "latency", "open", "memory", "storm", "herd", "cluster", "ceiling")
PER_START = ("open", "memory", "storm")  # a fresh server per round
CONNECT_SCENARIOS = ("open", "memory", "storm", "herd")  # on a database that already holds history (--seed)
OURS = ("sqlite", "mariadb")
ROOMS_SERVERS = OURS  # the peers have no rooms: the rooms scenario skips them
HERD_SERVERS = OURS  # nor storage or ?since=: the herd scenario skips them

# name: (label, unit, target from issue 3 or None, better: "low"/"high", scenario, how to get it from a result)
FIGURES = [
    ("fanout_cpu", "fan-out: server CPU per delivery", "us", "<= 3", "low"),
    ("fanout_rate", "fan-out: deliveries/s", "/s", None, "high"),
    ("direct_cpu", "direct: server CPU per message", "us", "<= 15", "low"),
    ("direct_rate", "direct: messages/s (to last ack)", "/s", None, "high"),
    ("latency_p50", "latency: p50 send->receive", "ms", None, "low"),
    ("latency_p99", "latency: p99 send->receive", "ms", "< 2.5", "low"),
    ("memory_5000", "memory: RSS per idle conn @5000", "KB", "<= 16", "low"),
    ("memory_10000", "memory: RSS per idle conn @10000", "KB", "<= 16", "low"),
    ("storm", "storm: s until 2000 connects upgraded", "s", "<= 1", "low"),
    ("herd_connected", "herd: s until 10000 reconnected with ?since= after a restart", "s", None, "low"),
    ("herd_caught", "herd: s until all 10000 caught up", "s", None, "low"),
    ("herd_wrong", "herd: messages missing + duplicated + out of order", "msgs", "= 0", "low"),
    ("open_s", "open: s until 5000 connections ready (200 in flight)", "s", None, "low"),
    ("open_upgraded", "open: s until the 5000 are upgraded", "s", None, "low"),
    ("open_cpu", "open: server CPU per connect", "us", None, "low"),
    ("memory_connect", "memory: s to open the 10000 (100 at a time)", "s", None, "low"),
    ("rooms_cpu", "rooms: server CPU per delivery, room burst", "us", None, "low"),
    ("rooms_msgcpu", "rooms: server CPU per room message", "us", None, "low"),
    ("rooms_general", "rooms: server CPU per delivery, general burst (same run)", "us", None, "low"),
    ("rooms_genmsg", "rooms: server CPU per general message (same run)", "us", None, "low"),
    ("rooms_ratio", "rooms: room ÷ general CPU per delivery (same round)", "×", None, "low"),
    ("rooms_rate", "rooms: room deliveries/s", "/s", None, "high"),
    ("rooms_leaks", "rooms: frames of room messages at non-members, all rounds", "frames", "= 0", "low"),
]

FULL = dict(
    fanout=dict(rounds=7, warmup=1, clients=1000, messages=300),
    direct=dict(rounds=5, warmup=1, pairs=200, messages=100),
    latency=dict(rounds=3, warmup=1, clients=100, rate=200, duration=5),
    memory=dict(rounds=2, steps="5000,10000"),
    storm=dict(rounds=5, clients=2000),
    open=dict(rounds=3, clients=5000, concurrency=200),
    cluster=dict(rounds=7, warmup=1, clients=1000, messages=300, paced_rate=50, paced_messages=100),
    rooms=dict(rounds=7, warmup=1, clients=1000, room_size=10, room_messages=10, messages=300),
    seed=dict(rounds=1, clients=200, rooms=20, seed_messages=50000, window=16),
    herd=dict(rounds=1, clients=10000, concurrency=200, herd_before=20, herd_outage=20, herd_after=50,
              restart_signal="KILL", timeout=180),
    ceiling=dict(rounds=1, processes="1,2,4", clients=400, window=4, duration=10),
)
QUICK = dict(
    fanout=dict(rounds=2, warmup=1, clients=1000, messages=300),
    direct=dict(rounds=2, warmup=1, pairs=200, messages=100),
    latency=dict(rounds=1, warmup=1, clients=100, rate=200, duration=2),
    memory=dict(rounds=1, steps="5000"),
    storm=dict(rounds=1, clients=2000),
    open=dict(rounds=1, clients=5000, concurrency=200),
    cluster=dict(rounds=3, warmup=1, clients=1000, messages=300, paced_rate=50, paced_messages=100),
    rooms=dict(rounds=2, warmup=1, clients=1000, room_size=10, room_messages=10, messages=300),
    seed=dict(rounds=1, clients=200, rooms=20, seed_messages=50000, window=16),
    herd=dict(rounds=1, clients=10000, concurrency=200, herd_before=20, herd_outage=20, herd_after=50,
              restart_signal="KILL", timeout=180),
    ceiling=dict(rounds=1, processes="1,2,4", clients=400, window=4, duration=10),
)


def say(*args):
    print(*args, file=sys.stderr, flush=True)


# ---- machine ------------------------------------------------------------------------------------------


def machine_info(mysql_admin):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def version(module):
        try:
            from importlib.metadata import version as v

            return v(module)
        except Exception:  # noqa: BLE001
            return "?"

    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "chat", "run_server.py"], capture_output=True, text=True, timeout=5).stdout.strip()
        commit += " (chat/ modified)" if dirty else ""
    except Exception:  # noqa: BLE001
        commit = "?"
    info = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        nproc=os.cpu_count(),
        cpu=model,
        memory_gib=round(mem_kb / 1024 / 1024, 1),
        kernel=platform.release(),
        python=platform.python_version(),
        packages={m: version(m) for m in ("gevent", "gevent-websocket", "Flask", "websockets", "picows", "uvloop", "PyMySQL")},
        git=commit,
    )
    try:
        import pymysql

        conn = pymysql.connect(connect_timeout=3, **mysql_admin)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            info["mariadb"] = cur.fetchone()[0]
        conn.close()
    except Exception as e:  # noqa: BLE001
        info["mariadb"] = f"unreachable: {e}"
    return info


# ---- processes ----------------------------------------------------------------------------------------


class Cleanup:
    """Everything to undo, even on error: server processes, MariaDB databases, temporary directories."""

    def __init__(self):
        self.procs = {}
        self.databases = []
        self.dirs = []
        self.callbacks = []  # run after the processes are stopped (e.g. deleting the Redis keys of this run)
        self.mysql_admin = None

    def kill_all(self):
        for pid, proc in list(self.procs.items()):
            stop_process(proc, grace=2)
            self.procs.pop(pid, None)
        while self.callbacks:
            try:
                self.callbacks.pop()()
            except Exception as e:  # noqa: BLE001
                say(f"warning: cleanup step failed: {e}")
        while self.databases:
            drop_database(self.mysql_admin, self.databases.pop())
        while self.dirs:
            shutil.rmtree(self.dirs.pop(), ignore_errors=True)


CLEANUP = Cleanup()


def stop_process(proc, grace=15.0):
    """SIGTERM, then SIGKILL after `grace` seconds; returns (exit code, graceful?)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(grace), True
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5), False


def _raise_nofile(limit=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (max(limit, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def create_database(admin):
    import pymysql

    name = f"chat_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(connect_timeout=5, **admin)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    CLEANUP.databases.append(name)
    return name


def clone_database(admin, source, target):
    """Copy every table of `source` (rows, indexes, auto-increment counters) into the empty database `target`."""
    import pymysql

    conn = pymysql.connect(connect_timeout=5, autocommit=True, **admin)
    with conn.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"SHOW FULL TABLES FROM `{source}` WHERE Table_type = 'BASE TABLE'")
        for (table, _kind) in cur.fetchall():
            cur.execute(f"CREATE TABLE `{target}`.`{table}` LIKE `{source}`.`{table}`")
            # Generated columns (messages.search_text, the FULLTEXT index's) are computed again, never copied.
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "AND GENERATION_EXPRESSION IS NULL ORDER BY ORDINAL_POSITION", (source, table),
            )
            columns = ", ".join(f"`{c}`" for (c,) in cur.fetchall())
            cur.execute(f"INSERT INTO `{target}`.`{table}` ({columns}) SELECT {columns} FROM `{source}`.`{table}`")
    conn.close()


def drop_database(admin, name):
    import pymysql

    try:
        conn = pymysql.connect(connect_timeout=5, **admin)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
    except Exception as e:  # noqa: BLE001
        say(f"warning: could not drop database {name}: {e}")
    if name in CLEANUP.databases:
        CLEANUP.databases.remove(name)


# Our server's production guards that a load test would trip, and how the bench sets them (only flags that
# `run_server.py --help` lists are passed; the rest of the settings keep their production defaults).
OUR_FLAGS = [
    ("--rate-limit", "1e9"),  # the per-connection rate limit: one sender bursts 300 messages
    ("--rate-burst", "1000000000"),
    ("--bots", ""),  # no chat bots: they would be extra recipients of every group message
    ("--max-connections-per-address", "1000000"),  # every load client connects from 127.0.0.1
    ("--rooms-created-per-address", "1000000"),  # the rooms scenario creates 100 rooms from 127.0.0.1
]
OUR_FLAGS_SHARED_NAMES = [("--max-connections-per-user", "1000000")]  # --memory-names shared only


def our_server_flags(memory_names):
    try:
        helptext = subprocess.run([PY, os.path.join(ROOT, "run_server.py"), "--help"], capture_output=True, text=True,
                                  timeout=60, cwd=ROOT).stdout
    except Exception:  # noqa: BLE001
        helptext = ""
    wanted = OUR_FLAGS + (OUR_FLAGS_SHARED_NAMES if memory_names == "shared" else [])
    flags = []
    for flag, value in wanted:
        if re.search(re.escape(flag) + r"\b", helptext):
            flags += [flag, value]
    return flags


class Server:
    """One server process pinned to the server core, with its own fresh database; logs go to a file."""

    READY = re.compile(r"listening on http://([0-9.]+):(\d+)/")

    def __init__(self, kind, opts, log_path, database_url=None, extra=(), core=None, template=None, keep=False):
        """`database_url`: use this database (made and removed by the caller) instead of a fresh one; `extra`: more
        flags for our server; `core`: pin to this core instead of the server core; `template`: the fresh database starts
        as a copy of this one (a SQLite directory or a MariaDB database name, see Seeds); `keep`: stop() leaves the
        fresh database in place (removed at the end of the run)."""
        self.template = template
        self.keep = keep
        self.cmd = None
        self.kind = kind
        self.opts = opts
        self.log_path = log_path
        self.database = None
        self.tmpdir = None
        self.proc = None
        self.port = None
        self.database_url = database_url
        self.extra = list(extra)
        self.core = opts.server_core if core is None else core

    def command(self):
        if self.database_url and self.kind in ("sqlite", "mariadb"):
            return [PY, os.path.join(ROOT, "run_server.py"), "--port", "0", "--database", self.database_url,
                    *self.opts.our_flags, *self.extra]
        if self.kind == "sqlite":
            self.tmpdir = tempfile.mkdtemp(prefix="chat-bench-")
            CLEANUP.dirs.append(self.tmpdir)
            if self.template:
                for f in os.listdir(self.template):
                    if f.startswith("chat.db"):
                        shutil.copyfile(os.path.join(self.template, f), os.path.join(self.tmpdir, f))
            return [PY, os.path.join(ROOT, "run_server.py"), "--port", "0", "--database", f"sqlite:///{self.tmpdir}/chat.db",
                    *self.opts.our_flags]
        if self.kind == "mariadb":
            self.database = create_database(self.opts.mysql_admin)
            if self.template:
                clone_database(self.opts.mysql_admin, self.template, self.database)
            a = self.opts.mysql_admin
            auth = a["user"] + (":" + a["password"] if a["password"] else "")
            url = f"mysql://{auth}@{a['host']}:{a['port']}/{self.database}"
            return [PY, os.path.join(ROOT, "run_server.py"), "--port", "0", "--database", url, *self.opts.our_flags]
        if self.kind == "naive":
            return [PY, os.path.join(HERE, "peers", "naive_seed.py"), "--port", "0"]
        if self.kind == "websockets":
            return [PY, os.path.join(HERE, "peers", "websockets_server.py"), "--port", "0"]
        if self.kind == "socketio":
            return [PY, os.path.join(HERE, "peers", "socketio_server.py"), "--port", "0"]
        raise ValueError(self.kind)

    def start(self, timeout=30.0):
        cmd = ["taskset", "-c", str(self.core)] + self.command()
        self.cmd = cmd
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        CLEANUP.procs[self.proc.pid] = self.proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} before listening:\n{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                m = self.READY.search(f.read().decode("utf-8", "replace"))
            if m:
                self.port = int(m.group(2))
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not print its listening line within {timeout} s:\n{self.log_tail()}")

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def anomalies(self):
        """Tracebacks and warnings/errors in the server's log."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            if "Traceback" in line or " ERROR " in line or " WARNING " in line or "Error" in line:
                found.append(line.strip()[:300])
        return found

    def stop(self):
        code = graceful = None
        if self.proc is not None:
            code, graceful = stop_process(self.proc)
            CLEANUP.procs.pop(self.proc.pid, None)
            self.log.close()
        if self.keep:
            return code, graceful
        if self.database:
            drop_database(self.opts.mysql_admin, self.database)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            if self.tmpdir in CLEANUP.dirs:
                CLEANUP.dirs.remove(self.tmpdir)
        return code, graceful


def mariadbd_pid():
    try:
        out = subprocess.run(["pidof", "mariadbd"], capture_output=True, text=True, timeout=5).stdout.split()
        return int(out[0]) if out else None
    except Exception:  # noqa: BLE001
        return None


def run_load(opts, server, scenario, params, rounds, log_path, target=None, kind=None, per_round_s=90):
    """Run bench/loadgen.py pinned to the client core against `server`; returns its JSON result.

    `target` replaces `--url URL --pid PID` (the cluster scenario passes its configurations), `kind` the server's
    kind, `per_round_s` the time one round may take at most (for the overall limit)."""
    kind = kind or server.kind
    target = target if target is not None else ["--url", server.url, "--pid", str(server.proc.pid)]
    cmd = ["taskset", "-c", str(opts.client_core), PY, os.path.join(HERE, "loadgen.py"), scenario, *target,
           "--rounds", str(rounds)]
    for key, value in params.items():
        if key != "rounds":
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    if scenario == "memory":
        cmd += ["--names", opts.memory_names]
    if kind in ("sqlite", "mariadb") and scenario != "storm":
        cmd += ["--wait-history"]
    if kind == "socketio":
        cmd += ["--protocol", "socketio"]
    if kind == "mariadb" and opts.db_pid:
        cmd += ["--db-pid", str(opts.db_pid)]
    # A bound for the whole load run: connects, every round's wait (60 s each at most) and closing.
    if scenario in ("fanout", "rooms", "direct", "latency", "cluster"):
        cmd += ["--retries", str(opts.retries)]
    budget = max(0.0, opts.quiet_budget - opts.quiet_used)
    cmd += ["--quiet-wait", str(min(opts.quiet_wait, budget)), "--quiet-budget", str(budget)]
    setup_s = {"memory": 600, "rooms": 120}.get(scenario, 0)  # connecting 10,000; creating and joining the rooms
    limit = 120 + budget + (rounds + params.get("warmup", 0) + opts.retries) * per_round_s + setup_s
    with open(log_path, "ab") as errlog:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        CLEANUP.procs[proc.pid] = proc
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            errlog.write(err)
            return dict(ok=False, failure=f"load client did not finish within {limit} s", stderr=err.decode(errors="replace")[-2000:])
        finally:
            CLEANUP.procs.pop(proc.pid, None)
        errlog.write(err)
    sys.stderr.write(err.decode(errors="replace"))
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1])
        opts.quiet_used += result.get("quiet_waited_s", 0.0)
        return result
    except (IndexError, ValueError):
        return dict(ok=False, failure=f"load client exited {proc.returncode} without a result", stderr=err.decode(errors="replace")[-2000:])


class Seeds:
    """A database per store that already holds history, made once per run through the real protocol (bench/loadgen.py
    seed: users, rooms, messages and read markers); every connect scenario's fresh server starts on a copy of it."""

    def __init__(self, opts, params, logdir):
        self.opts, self.params, self.logdir = opts, params, logdir
        self.templates = {}  # kind -> SQLite directory or MariaDB database name
        self.results = {}  # kind -> the seed run's result

    def template(self, kind):
        if kind not in self.templates:
            server = Server(kind, self.opts, os.path.join(self.logdir, f"{kind}-seed.server.log"), keep=True)
            try:
                server.start()
                say(f"[{SERVERS[kind]}] seeding: {self.params['clients']} users, {self.params['rooms']} rooms, "
                    f"{self.params['seed_messages']:,} messages and read markers (not measured)")
                t0 = time.monotonic()
                result = run_load(self.opts, server, "seed", self.params, 1,
                                  os.path.join(self.logdir, f"{kind}-seed.load.log"), per_round_s=900)
                result["wall_s"] = round(time.monotonic() - t0, 1)
            finally:
                server.stop()  # gracefully: everything is committed (and SQLite's WAL folded back) before the copies
            self.results[kind] = result
            if not result.get("ok"):
                raise RuntimeError(f"seeding the {kind} database failed: {result.get('failure')}\n{server.log_tail()}")
            self.templates[kind] = server.tmpdir if kind == "sqlite" else server.database
        return self.templates[kind]


def stop_pid_file(path, grace=15.0):
    """Stop the server whose pid the herd scenario's load client wrote (it restarted the server itself)."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + grace
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        return
            except FileNotFoundError:
                return
            time.sleep(0.1)
        deadline = time.monotonic() + 5


def run_scenario(opts, kind, scenario, params, logdir, seeds=None):
    """All rounds of one scenario against one server kind. Fresh server per scenario (per round for open, memory and
    storm); `seeds`: start every server of ours on a copy of the seeded database."""
    per_round_server = scenario in PER_START
    runs = params["rounds"] if per_round_server else 1
    results = []
    notes = []
    for i in range(runs):
        tag = f"{kind}-{scenario}" + (f"-{i + 1}" if per_round_server else "")
        server = None
        try:
            template = seeds.template(kind) if seeds is not None and kind in OURS else None
            server = Server(kind, opts, os.path.join(logdir, f"{tag}.server.log"), template=template)
            server.start()
            say(f"[{SERVERS[kind]}] {scenario}{f' round {i + 1}/{runs}' if per_round_server else ''}: "
                f"pid {server.proc.pid} on core {opts.server_core}, {server.url}")
            target = None
            if scenario == "herd":
                cmd = list(server.cmd)
                cmd[cmd.index("--port") + 1] = str(server.port)  # the restarted server: same port, same database
                new_pid_file = os.path.join(logdir, f"{tag}.restarted.pid")
                target = ["--url", server.url, "--pid", str(server.proc.pid), "--restart-cmd", json.dumps(cmd),
                          "--restart-log", os.path.join(logdir, f"{tag}.restarted.server.log"),
                          "--new-pid-file", new_pid_file]
            try:
                result = run_load(opts, server, scenario, params, 1 if per_round_server else params["rounds"],
                                  os.path.join(logdir, f"{tag}.load.log"), target=target,
                                  per_round_s={"rooms": 150, "herd": 600}.get(scenario, 90))
            finally:
                if scenario == "herd":
                    stop_pid_file(new_pid_file)
            if server.proc.poll() is not None and scenario != "herd":
                result["ok"] = False
                result["failure"] = (result.get("failure") or "") + f"; server exited with {server.proc.returncode}"
        except Exception as e:  # noqa: BLE001
            result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
        finally:
            code, graceful = server.stop() if server is not None else (None, None)
        if code not in (0, None, -signal.SIGTERM) or graceful is False:
            notes.append(f"{tag}: server exit code {code} ({'after SIGTERM' if graceful else 'killed'})")
        if server is not None:
            for line in server.anomalies():
                notes.append(f"{tag}: log: {line}")
            if not result.get("ok"):
                result["server_log_tail"] = server.log_tail()
        results.append(result)
        if not result.get("ok"):
            break
    return merge_results(scenario, results), notes


def merge_results(scenario, results):
    if len(results) == 1:
        return results[0]
    merged = dict(ok=all(r.get("ok") for r in results), per_server_start=results)
    for r in results:
        if not r.get("ok"):
            merged["failure"] = r.get("failure")
            merged["server_log_tail"] = r.get("server_log_tail")
    return merged


# ---- the multi-process scenario (cluster) ---------------------------------------------------------------

# id, label, processes, Redis?, receivers (None: the plan's `clients`), messages per round (None: the plan's
# `messages`). The receivers of a configuration are spread round-robin over its processes; its sender is on the first.
# The sender-only pair (no receivers anywhere) measures the per-message costs apart from the deliveries: what the bus
# adds in the process that publishes (p2rs's first process against p1s), and what a process that only receives
# over the bus pays per message (p2rs's second process). They send 10x the messages, so that a round is worth tens
# of milliseconds of CPU.
CLUSTER_CONFIGS = [
    ("p1", "1 process", 1, False, None, None),
    ("p1r", "1 process + Redis", 1, True, None, None),
    ("p2r", "2 processes + Redis", 2, True, None, None),
    ("p1s", "sender only, 1 process", 1, False, 0, 10),
    ("p2rs", "sender only, 2 processes + Redis", 2, True, 0, 10),
]


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchRedis:
    """The Redis of the cluster scenario: a private redis-server on a free loopback port (default: only our work in its
    CPU figures), or an existing one (--redis-url). Every key goes under a prefix unique to this run, deleted at the end."""

    def __init__(self, opts, logdir):
        self.opts = opts
        self.logdir = logdir
        self.private = opts.redis_url == "private"
        self.url = None if self.private else opts.redis_url
        self.prefix = f"bench-{uuid.uuid4().hex[:12]}:"
        self.proc = None
        self.pid = None
        self.version = None
        self.tmpdir = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=3, socket_connect_timeout=3)

    def start(self):
        if self.private:
            exe = shutil.which("redis-server")
            if not exe:
                raise RuntimeError("redis-server not found; pass --redis-url redis://127.0.0.1:6379/0 to use a running Redis")
            port = free_port()
            self.tmpdir = tempfile.mkdtemp(prefix="chat-bench-redis-")
            CLEANUP.dirs.append(self.tmpdir)
            self.log = open(os.path.join(self.logdir, "cluster-redis.log"), "wb")
            cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.tmpdir,
                   "--daemonize", "no", "--loglevel", "warning"]
            self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            CLEANUP.procs[self.proc.pid] = self.proc
            self.url = f"redis://127.0.0.1:{port}/0"
        CLEANUP.callbacks.append(self.delete_keys)
        deadline = time.monotonic() + 10
        while True:
            try:
                info = self.client().info("server")
                break
            except Exception as e:  # noqa: BLE001
                if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    raise RuntimeError(f"Redis at {self.url} not reachable: {e}") from None
                time.sleep(0.1)
        self.version = info.get("redis_version")
        pid = int(info.get("process_id", 0))
        try:
            with open(f"/proc/{pid}/comm") as f:
                self.pid = pid if f.read().startswith("redis") else None
        except OSError:
            self.pid = None  # another machine or another pid namespace: no Redis CPU figures
        return self

    def delete_keys(self):
        """Delete every key under this run's prefix; the number deleted (None if Redis is unreachable)."""
        if self.proc is not None and self.proc.poll() is not None:
            return 0  # the private server is gone, and its keys with it
        try:
            client = self.client()
            keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
            return len(keys)
        except Exception as e:  # noqa: BLE001
            say(f"warning: could not delete the Redis keys under {self.prefix}: {e}")
            return None

    def stop(self):
        deleted = self.delete_keys()
        if self.delete_keys in CLEANUP.callbacks:
            CLEANUP.callbacks.remove(self.delete_keys)
        if self.proc is not None:
            stop_process(self.proc, grace=5)
            CLEANUP.procs.pop(self.proc.pid, None)
            self.log.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            if self.tmpdir in CLEANUP.dirs:
                CLEANUP.dirs.remove(self.tmpdir)
        return deleted


def healthz(server):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as response:
        return json.loads(response.read())


def wait_for_cluster(servers, timeout=20.0):
    """Until every process of a configuration is connected to Redis and sees all the others; their /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        health = []
        for server in servers:
            try:
                health.append(healthz(server))
            except Exception as e:  # noqa: BLE001
                health.append(dict(error=str(e)))
        if all(h.get("bus_connected") and h.get("instances") == len(servers) for h in health):
            return health
        if time.monotonic() > deadline:
            raise RuntimeError(f"the processes did not form a cluster of {len(servers)} within {timeout:.0f} s: {health}")
        time.sleep(0.2)


def redis_probe(opts, bus, log_path):
    """bench/redis_cost.py: Redis's CPU per PUBLISH (1 and 150 messages, 1-8 subscribers, 1 and 32 in flight)."""
    cmd = ["taskset", "-c", str(opts.client_core), PY, os.path.join(HERE, "redis_cost.py"), "--redis-url", bus.url,
           "--redis-pid", str(bus.pid), "--channel", bus.prefix + "costprobe", "--batches", "300" if opts.quick else "1000"]
    with open(log_path, "ab") as errlog:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=errlog, stdin=subprocess.DEVNULL)
        CLEANUP.procs[proc.pid] = proc
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return dict(ok=False, failure="bench/redis_cost.py did not finish within 180 s")
        finally:
            CLEANUP.procs.pop(proc.pid, None)
    try:
        return json.loads(out.decode(errors="replace").strip().splitlines()[-1])
    except (IndexError, ValueError):
        return dict(ok=False, failure=f"bench/redis_cost.py exited {proc.returncode} without a result")


def run_cluster(opts, params, logdir):
    """The cluster scenario: every configuration started at once, one load client running their rounds in turn."""
    notes = []
    bus = BenchRedis(opts, logdir)
    kind = opts.cluster_db
    started = []  # every Server, to stop at the end
    made = []  # (kind, name) of the databases to remove: ("dir", path) or ("mariadb", name)
    setup = dict(db=kind, redis="private redis-server" if bus.private else opts.redis_url, prefix=bus.prefix,
                 spread=opts.cluster_spread)
    result = None
    try:
        bus.start()
        setup.update(redis_url=bus.url, redis_version=bus.version, redis_pid=bus.pid)

        def fresh_database():
            if kind == "sqlite":
                tmp = tempfile.mkdtemp(prefix="chat-bench-")
                CLEANUP.dirs.append(tmp)
                made.append(("dir", tmp))
                return f"sqlite:///{tmp}/chat.db"
            name = create_database(opts.mysql_admin)
            made.append(("mariadb", name))
            a = opts.mysql_admin
            auth = a["user"] + (":" + a["password"] if a["password"] else "")
            return f"mysql://{auth}@{a['host']}:{a['port']}/{name}"

        configs = []
        for cid, label, nproc, with_redis, receivers, times in CLUSTER_CONFIGS:
            database = fresh_database()  # one per configuration, shared by its processes
            extra = ["--redis", bus.url, "--redis-prefix", f"{bus.prefix}{cid}:"] if with_redis else []
            servers = []
            for i in range(nproc):
                # --cluster-spread: the second process on the load client's core (see the README).
                core = opts.client_core if (i == 1 and opts.cluster_spread) else opts.server_core
                server = Server(kind, opts, os.path.join(logdir, f"cluster-{cid}-{i + 1}.server.log"),
                                database_url=database, extra=extra, core=core)
                started.append(server)
                server.start()  # one after the other: the first creates the schema
                servers.append(server)
                say(f"[cluster] {label}: process {i + 1} pid {server.proc.pid} on core {core}, {server.url}")
            if with_redis:
                wait_for_cluster(servers)
            cfg = dict(name=cid, urls=[s.url for s in servers], pids=[s.proc.pid for s in servers], clustered=with_redis)
            if receivers is not None:
                cfg["receivers"] = receivers
            if times is not None:
                cfg["messages"] = params["messages"] * times
            configs.append(cfg)
        setup["configs"] = configs
        target = ["--configs", json.dumps(configs), "--redis-url", bus.url, "--timeout", "30"]
        if bus.pid:
            target += ["--bus-pid", str(bus.pid)]
        result = run_load(opts, None, "cluster", {k: v for k, v in params.items()}, params["rounds"],
                          os.path.join(logdir, "cluster.load.log"), target=target, kind=kind,
                          per_round_s=35 * (len(configs) + (sum(1 for c in configs if c.get("receivers") != 0)
                                                            if params.get("paced_rate") else 0)))
        for server in started:
            if server.proc.poll() is not None:
                result["ok"] = False
                result["failure"] = (result.get("failure") or "") + f"; {os.path.basename(server.log_path)}: exited with {server.proc.returncode}"
        if bus.pid:
            result["redis_probe"] = redis_probe(opts, bus, os.path.join(logdir, "cluster.load.log"))
        health = {}
        for server in started:
            if "--redis" in server.extra:
                try:
                    health[os.path.basename(server.log_path)] = healthz(server)
                except Exception as e:  # noqa: BLE001
                    health[os.path.basename(server.log_path)] = dict(error=str(e))
        result["health_after"] = health
    except Exception as e:  # noqa: BLE001
        result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
    finally:
        for server in reversed(started):
            tag = os.path.basename(server.log_path).replace(".server.log", "")
            code, graceful = server.stop()
            if code not in (0, None, -signal.SIGTERM) or graceful is False:
                notes.append(f"{tag}: server exit code {code} ({'after SIGTERM' if graceful else 'killed'})")
            for line in server.anomalies():
                notes.append(f"{tag}: log: {line}")
            if result is not None and not result.get("ok"):
                result.setdefault("server_log_tails", {})[tag] = server.log_tail()
        setup["redis_keys_left_and_deleted"] = bus.stop()
        for what, name in made:
            if what == "dir":
                shutil.rmtree(name, ignore_errors=True)
                if name in CLEANUP.dirs:
                    CLEANUP.dirs.remove(name)
            else:
                drop_database(opts.mysql_admin, name)
    result["setup"] = setup
    return result, notes


def run_ceiling(opts, params, logdir):
    """The cluster ceiling: 1, 2 and 4 processes sharing one database (MariaDB by default) and a private Redis, one
    configuration after the other, each driven by bench/loadgen.py ceiling; a list of its results."""
    bus = BenchRedis(opts, logdir)
    results, notes = [], []
    try:
        bus.start()
        for nproc in [int(x) for x in str(params["processes"]).split(",")]:
            if opts.cluster_db == "sqlite":
                tmp = tempfile.mkdtemp(prefix="chat-bench-")
                CLEANUP.dirs.append(tmp)
                database, name = f"sqlite:///{tmp}/chat.db", None
            else:
                name = create_database(opts.mysql_admin)
                a = opts.mysql_admin
                auth = a["user"] + (":" + a["password"] if a["password"] else "")
                database = f"mysql://{auth}@{a['host']}:{a['port']}/{name}"
            extra = ["--redis", bus.url, "--redis-prefix", f"{bus.prefix}ceiling{nproc}:"]
            servers = []
            try:
                for i in range(nproc):
                    server = Server(opts.cluster_db, opts, os.path.join(logdir, f"ceiling{nproc}-{i + 1}.server.log"),
                                    database_url=database, extra=extra)
                    servers.append(server)
                    server.start()
                wait_for_cluster(servers)
                cfg = [dict(urls=[s.url for s in servers], pids=[s.proc.pid for s in servers])]
                target = ["--configs", json.dumps(cfg), "--mysql-url", opts.mysql_url if opts.cluster_db == "mariadb" else ""]
                if bus.pid:
                    target += ["--bus-pid", str(bus.pid)]
                if opts.cluster_db == "mariadb" and mariadbd_pid():
                    target += ["--db-pid", str(mariadbd_pid())]
                say(f"[ceiling] {nproc} process(es) on core {opts.server_core}, {opts.cluster_db}, Redis {bus.url}")
                result = run_load(opts, None, "ceiling", {k: v for k, v in params.items() if k != "processes"}, 1,
                                  os.path.join(logdir, f"ceiling{nproc}.load.log"), target=target, kind=opts.cluster_db)
            except Exception as e:  # noqa: BLE001
                result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
            finally:
                for server in servers:
                    server.stop()
                    for line in server.anomalies():
                        notes.append(f"ceiling{nproc}: log: {line}")
                if name:
                    drop_database(opts.mysql_admin, name)
            result["processes"] = nproc
            results.append(result)
    finally:
        bus.stop()
    return results, notes


def ceiling_table(results):
    rows = [["processes", "committed/s", "delivered/s", "CPU per process (share of a core)", "Redis CPU", "mariadbd CPU",
             "row-lock waits/s", "row-lock wait (s per s)", "highest"]]
    for r in results:
        if not r.get("ok"):
            rows.append([str(r.get("processes")), "FAIL: " + str(r.get("failure"))[:80]] + [""] * 7)
            continue
        pct = lambda x: "-" if x is None else f"{x:.0%}"  # noqa: E731
        rows.append([str(r["processes"]), f"{r['committed_per_s']:,.0f}", f"{r['delivered_per_s']:,.0f}",
                     " / ".join(pct(x) for x in r["cpu_share_per_process"]), pct(r["redis_cpu_share"]),
                     pct(r["mariadb_cpu_share"]), f"{r['row_lock_waits_per_s']:,.0f}", f"{r['row_lock_wait_share']:.2f}",
                     r["first_to_saturate"]])
    return rows


def cluster_figures(result):
    """{figure: (median, [per-round values], flags)} from the cluster result.

    Figure names are `<configuration>[@paced].<what>`. Differences and ratios against `1 process` are taken within
    each round (the configurations run one after the other in the same round, in the same sending mode), then the
    median over rounds is taken."""
    rounds = result.get("rounds") or []
    if not rounds:
        return {}
    per = {}  # figure -> [values]

    def add(name, value):
        if value is not None:
            per.setdefault(name, []).append(value)

    for rows in rounds:
        # Redis's CPU that is not the bus's work (its own timers, the idle processes' heartbeats, other clients of a
        # shared Redis): its rate over the same round's `1 process` run, which uses no Redis at all.
        rates = [row["bus_cpu_s"] / row["bracket_s"] for cid, row in rows.items()
                 if cid.split("@")[0] in ("p1", "p1s") and "bus_cpu_s" in row]
        bg_rate = statistics.median(rates) if rates else None
        for key, row in rows.items():
            cid, _, mode = key.partition("@")
            base = rows.get("p1" + ("@" + mode if mode else ""))
            add(f"{key}.cpu_d", row.get("cpu_us_per_delivery"))
            add(f"{key}.cpu_m", row.get("cpu_us_per_message"))
            add(f"{key}.rate", row.get("deliveries_per_s"))
            add(f"{key}.p50", row.get("p50_ms"))
            add(f"{key}.p99", row.get("p99_ms"))
            add(f"{key}.client", row.get("client_cpu_share"))
            add(f"{key}.others", max(0.0, row.get("others_cores", 0) + row.get("steal_cores", 0) - row.get("tick_slack", 0)))
            if len(row["cpu_per_process_s"]) > 1 and row["deliveries"]:
                for i, (cpu, nrecv) in enumerate(zip(row["cpu_per_process_s"], row["receivers_per_process"])):
                    add(f"{key}.proc{i + 1}_d", cpu / (nrecv * row["messages"]) * 1e6)
                add(f"{key}.send_side_m", (row["cpu_per_process_s"][0] - row["cpu_per_process_s"][1]) / row["messages"] * 1e6)
            bus_net = None
            if "bus_cpu_s" in row and bg_rate is not None and cid not in ("p1", "p1s"):
                bus_net = row["bus_cpu_s"] - bg_rate * row["bracket_s"]
                if row["deliveries"]:
                    add(f"{key}.bus_d", bus_net / row["deliveries"] * 1e6)
                add(f"{key}.bus_m", bus_net / row["messages"] * 1e6)
                if row.get("redis_publishes"):
                    add(f"{key}.bus_per_publish", bus_net / row["redis_publishes"] * 1e6)
            if row.get("redis_publishes") is not None:
                add(f"{key}.publishes", row["redis_publishes"])
                if row["redis_publishes"]:
                    add(f"{key}.msgs_per_publish", row["messages"] / row["redis_publishes"])
            if base is not None and cid != "p1" and row["deliveries"] and base["deliveries"]:
                total = row["cpu_us_per_delivery"] + (bus_net / row["deliveries"] * 1e6 if bus_net is not None else 0.0)
                add(f"{key}.total_d", total)
                add(f"{key}.added_d", total - base["cpu_us_per_delivery"])
                if base["cpu_us_per_delivery"]:
                    add(f"{key}.ratio_d", total / base["cpu_us_per_delivery"])
                    add(f"{key}.ratio_srv_d", row["cpu_us_per_delivery"] / base["cpu_us_per_delivery"])
                if row.get("deliveries_per_s") and base.get("deliveries_per_s"):
                    add(f"{key}.ratio_rate", row["deliveries_per_s"] / base["deliveries_per_s"])
                for q in ("p50", "p99"):
                    if row.get(f"{q}_ms") and base.get(f"{q}_ms"):
                        add(f"{key}.ratio_{q}", row[f"{q}_ms"] / base[f"{q}_ms"])
        if "p2rs" in rows:
            b = rows["p2rs"]
            send_m = b["cpu_per_process_s"][0] / b["messages"] * 1e6
            add("p2rs.send_m", send_m)
            add("p2rs.recv_m", b["cpu_per_process_s"][1] / b["messages"] * 1e6)
            if "p1s" in rows:
                a = rows["p1s"]
                add("p2rs.added_m", send_m - a["cpu_us_per_message"])
                if a["cpu_us_per_message"]:
                    add("p2rs.ratio_m", send_m / a["cpu_us_per_message"])
    others = [max(vals) for vals in zip(*[per[k] for k in per if k.endswith(".others")])]
    disturbed = bool(others) and statistics.median(others) > 0.1
    out = {}
    for name, values in per.items():
        flags = ""
        if name.endswith(".rate") and statistics.median(per.get(name.rsplit(".", 1)[0] + ".client", [0])) > 0.9:
            flags += "*"
        if disturbed:
            flags += "!"
        out[name] = (statistics.median(values), values, flags)
    return out


def cluster_table(figs, paced_rate=None):
    """The multi-process table: one column per configuration, rows of figures (cells empty where they do not apply)."""
    cols = ["p1", "p1r", "p2r"]
    bus_cols = ("p1r", "p2r")
    header = ["figure"] + [label for cid, label, *_ in CLUSTER_CONFIGS if cid in cols]

    def value(name, unit):
        f = figs.get(name)
        if f is None:
            return ""
        if unit == "us3":
            return f"{f[0]:.3f}{f[2]}"
        if unit == "n":
            return f"{f[0]:.0f}{f[2]}"
        return fmt(f[0], unit) + f[2]

    def ratio(name):
        f = figs.get(name)
        return f"×{f[0]:.2f}" if f else ""

    def fanout_spec(mode, title):
        m = "@" + mode if mode else ""
        spec = [
            (f"{title}: servers' CPU per delivery (us)", {c: (f"{c}{m}.cpu_d", "us") for c in cols}),
            ("  ÷ 1 process (same round)", {c: ("ratio", f"{c}{m}.ratio_srv_d") for c in bus_cols}),
            ("  per process: sender's + 500 / 500 (us)", {"p2r": ("pair", (f"p2r{m}.proc1_d", f"p2r{m}.proc2_d"))}),
            (f"{title}: Redis CPU per delivery, net of its background (us)", {c: (f"{c}{m}.bus_d", "us3") for c in bus_cols}),
            (f"{title}: servers + Redis CPU per delivery (us)", {"p1": (f"p1{m}.cpu_d", "us"), **{c: (f"{c}{m}.total_d", "us") for c in bus_cols}}),
            ("  added by the bus per delivery, vs 1 process (us)", {c: (f"{c}{m}.added_d", "us3") for c in bus_cols}),
            ("  ÷ 1 process (same round)", {c: ("ratio", f"{c}{m}.ratio_d") for c in bus_cols}),
        ]
        if not mode:
            spec += [
                (f"{title}: deliveries/s (see the caveat)", {c: (f"{c}.rate", "/s") for c in cols}),
                ("  ÷ 1 process (same round)", {c: ("ratio", f"{c}.ratio_rate") for c in bus_cols}),
            ]
        else:
            spec += [
                (f"{title}: latency p50 send->receive (ms)", {c: (f"{c}{m}.p50", "ms") for c in cols}),
                ("  ÷ 1 process (same round)", {c: ("ratio", f"{c}{m}.ratio_p50") for c in bus_cols}),
                (f"{title}: latency p99 send->receive (ms)", {c: (f"{c}{m}.p99", "ms") for c in cols}),
                ("  ÷ 1 process (same round)", {c: ("ratio", f"{c}{m}.ratio_p99") for c in bus_cols}),
            ]
        spec += [
            (f"{title}: Redis PUBLISHes per round / messages per PUBLISH", {c: ("pairn", (f"{c}{m}.publishes", f"{c}{m}.msgs_per_publish")) for c in bus_cols}),
            (f"{title}: Redis CPU per message published, net (us)", {c: (f"{c}{m}.bus_m", "us") for c in bus_cols}),
            (f"{title}: sending process minus receiving process, per message (us)", {"p2r": (f"p2r{m}.send_side_m", "us")}),
        ]
        return spec

    spec = fanout_spec("", "burst")
    if paced_rate:
        spec += fanout_spec("paced", f"paced {paced_rate:.0f}/s")
    spec += [
        ("sender only, no receivers: sending process CPU per message (us)", {"p1": ("p1s.cpu_m", "us"), "p2r": ("p2rs.send_m", "us")}),
        ("  added by the bus per message published (us)", {"p2r": ("p2rs.added_m", "us")}),
        ("  ÷ 1 process (same round)", {"p2r": ("ratio", "p2rs.ratio_m")}),
        ("sender only: the other process's CPU per message it receives (us)", {"p2r": ("p2rs.recv_m", "us")}),
        ("sender only: Redis CPU per message published, net (us)", {"p2r": ("p2rs.bus_m", "us")}),
        ("sender only: messages per PUBLISH", {"p2r": ("p2rs.msgs_per_publish", "n")}),
    ]
    rows = [header]
    for label, cells in spec:
        row = [label]
        for c in cols:
            what = cells.get(c)
            if what is None:
                row.append("")
            elif what[0] == "ratio":
                row.append(ratio(what[1]))
            elif what[0] in ("pair", "pairn"):
                unit = "us" if what[0] == "pair" else "n"
                a, b = (value(n, unit) for n in what[1])
                row.append(f"{a} / {b}" if a and b else "")
            else:
                row.append(value(*what))
        if any(row[1:]):
            rows.append(row)
    return rows


PROBE_NOTES = [
    "Redis alone (bench/redis_cost.py, pinned with the load client): the same Redis; the batches are the bytes our "
    "server publishes; as many publisher connections as subscribers, each waiting for its replies with 1 (a server "
    "publishing into an idle Redis) or 32 (Redis kept busy) PUBLISHes in flight; the subscribers read and discard. "
    "Redis's CPU minus its idle background rate. When MB/s to subscribers is in the hundreds, the one-process client "
    "reading them is the limit and Redis's CPU per PUBLISH grows with its output buffers.",
]


def redis_probe_table(probe):
    """Rows: subscribers, Redis CPU per PUBLISH and per message, PUBLISH/s (one publisher waiting for each reply)."""
    if not probe or not probe.get("ok"):
        return None
    rows = [["Redis alone: one PUBLISH of", "in flight per publisher", "subscribers (= publishers)",
             "Redis CPU per PUBLISH (us)", "per message (us)", "PUBLISH/s", "MB/s to subscribers"]]
    for run in probe["runs"]:
        n = run["batch_messages"]
        rows.append([f"{n} message{'s' if n > 1 else ''} ({run['payload_bytes'] / 1024:.1f} KiB)", str(run.get("depth", 1)),
                     str(run["subscribers"]), f"{run['net_us_per_publish']:.1f}", f"{run['net_us_per_message']:.3f}",
                     f"{run['publishes_per_s']:,.0f}",
                     f"{run['publishes_per_s'] * run['payload_bytes'] * run['subscribers'] / 1e6:,.0f}"])
    return rows


def cluster_spread(figs):
    """Per configuration: rounds and half the max-min spread of the main figures, as % of the median."""
    rows = [["figure (rounds: max-min as % of median)", "1 process", "1 process + Redis", "2 processes + Redis"]]
    for label, key in (("burst: servers' CPU per delivery", ".cpu_d"), ("burst: deliveries/s", ".rate"),
                       ("paced: servers' CPU per delivery", "@paced.cpu_d"), ("paced: latency p99", "@paced.p99")):
        if not any(f"{c}{key}" in figs for c in ("p1", "p1r", "p2r")):
            continue
        row = [label]
        for c in ("p1", "p1r", "p2r"):
            f = figs.get(f"{c}{key}")
            if f:
                med, values, _ = f
                row.append(f"n={len(values)} ±{(max(values) - min(values)) / med * 50:.0f}%" if med else "-")
            else:
                row.append("-")
        rows.append(row)
    return rows


# ---- figures and the table -----------------------------------------------------------------------------


def _rounds_of(result, scenario):
    """The per-round rows of a scenario result (memory/storm: one row per server start)."""
    if scenario in PER_START:
        starts = result.get("per_server_start", [result])
        return [r for r in starts if r.get("ok")]
    if scenario == "herd":
        return [result] if result.get("ok") else []
    return result.get("rounds", []) if result.get("ok") else []


def figures_for(scenario, result):
    """{figure name: (median, [round values], client-bound?)} for one scenario result."""
    rows = _rounds_of(result, scenario)
    if not rows:
        return {}

    # Other processes on the pinned cores during the rounds (bench/loadgen.py measures it from /proc/stat).
    others = [max(0.0, r.get("others_cores", 0) + r.get("steal_cores", 0) - r.get("tick_slack", 0)) for r in rows]
    disturbed = bool(others) and statistics.median(others) > 0.1

    def fig(values, client_shares=()):
        flags = ""
        if client_shares and statistics.median(client_shares) > 0.9:
            flags += "*"
        if disturbed:
            flags += "!"
        return (statistics.median(values), values, flags)

    if scenario == "fanout":
        shares = [r["client_cpu_share"] for r in rows]
        return dict(fanout_cpu=fig([r["cpu_us_per_delivery"] for r in rows]),
                    fanout_rate=fig([r["deliveries_per_s"] for r in rows], shares))
    if scenario == "direct":
        shares = [r["client_cpu_share"] for r in rows]
        out = dict(direct_cpu=fig([r["cpu_us_per_message"] for r in rows]),
                   direct_rate=fig([r["messages_per_s"] for r in rows], shares))
        if all("db_cpu_us_per_message" in r for r in rows):
            out["direct_db_cpu"] = fig([r["db_cpu_us_per_message"] for r in rows])
        return out
    if scenario == "latency":
        shares = [r["client_cpu_share"] for r in rows]
        return dict(latency_p50=fig([r["p50_ms"] for r in rows], shares),
                    latency_p99=fig([r["p99_ms"] for r in rows], shares))
    if scenario == "memory":
        out = {}
        for step in ("5000", "10000"):
            values = [r["steps"][step]["kb_per_connection"] for r in rows if step in r.get("steps", {})]
            if values:
                out[f"memory_{step}"] = fig(values)
        totals = [sum(st["connect_s"] for st in r["steps"].values()) for r in rows if "10000" in r.get("steps", {})]
        if totals:
            out["memory_connect"] = fig(totals)
        return out
    if scenario == "storm":
        return dict(storm=fig([r["seconds"] for r in rows]))
    if scenario == "herd":
        r = rows[0]
        return dict(herd_connected=fig([r["all_connected_s"]]), herd_caught=fig([r["caught_up_s"]]),
                    herd_wrong=(r["missing"] + r["duplicated"] + r["out_of_order"], [], ""))
    if scenario == "open":
        return dict(open_s=fig([r["seconds"] for r in rows]), open_upgraded=fig([r["upgraded_s"] for r in rows]),
                    open_cpu=fig([r["cpu_us_per_connect"] for r in rows]))
    if scenario == "rooms":
        leaks = [r["foreign_messages"] for r in rows]
        return dict(rooms_cpu=fig([r["rooms_cpu_us_per_delivery"] for r in rows]),
                    rooms_msgcpu=fig([r["rooms_cpu_us_per_message"] for r in rows]),
                    rooms_general=fig([r["general_cpu_us_per_delivery"] for r in rows]),
                    rooms_genmsg=fig([r["general_cpu_us_per_message"] for r in rows]),
                    rooms_ratio=fig([r["ratio_per_delivery"] for r in rows]),
                    rooms_rate=fig([r["rooms_deliveries_per_s"] for r in rows], [r["rooms_client_cpu_share"] for r in rows]),
                    rooms_leaks=(sum(leaks), leaks, ""))  # a total, not a median: any leak at all fails the scenario
    return {}


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}"
    if unit in ("KB",):
        return f"{value:.1f}"
    if unit in ("frames", "msgs"):
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def build_table(servers, figures, failures):
    """Rows of cells: figure, target, each server, then ours÷peer ratios."""
    ours = [s for s in servers if s in ("sqlite", "mariadb")]
    peers = [s for s in servers if s in PEERS]
    ratio_cols = [(o, p) for o in ours for p in peers]
    header = ["figure", "target"] + [SERVERS[s] for s in servers] + [f"{SERVERS[o].split('/')[1]}÷{SERVERS[p].split()[0]}" for o, p in ratio_cols]
    rows = [header]
    for name, label, unit, target, _better in FIGURES:
        scen = name.split("_")[0]
        if not any(scen in failures.get(s, {}) or name in figures.get(s, {}) for s in servers):
            continue
        cells = [f"{label} ({unit})", target or ""]
        for s in servers:
            if name in figures.get(s, {}):
                value, _, flags = figures[s][name]
                cells.append(fmt(value, unit) + flags)
            elif scen in failures.get(s, {}):
                cells.append("FAIL")
            elif scen == "rooms" and s not in ROOMS_SERVERS:
                cells.append("no rooms")
            else:
                cells.append("-")
        for o, p in ratio_cols:
            a, b = figures.get(o, {}).get(name), figures.get(p, {}).get(name)
            cells.append(f"{a[0] / b[0]:.2f}" if a and b and b[0] else "-")
        rows.append(cells)
    if any("direct_db_cpu" in figures.get(s, {}) for s in servers):
        cells = ["direct: mariadbd CPU per message, not in the server figure (us)", ""]
        for s in servers:
            v = figures.get(s, {}).get("direct_db_cpu")
            cells.append(fmt(v[0], "us") if v else "")
        cells += [""] * len(ratio_cols)
        rows.append(cells)
    return rows


def spread_table(servers, figures):
    rows = [["figure (rounds: max-min as % of median)"] + [SERVERS[s] for s in servers]]
    for name, label, unit, _t, _b in FIGURES:
        if not any(name in figures.get(s, {}) for s in servers):
            continue
        cells = [label]
        for s in servers:
            f = figures.get(s, {}).get(name)
            if f:
                med, values, _ = f
                spread = (max(values) - min(values)) / med * 100 if med else 0
                cells.append(f"n={len(values)} ±{spread / 2:.0f}%")
            else:
                cells.append("-")
        rows.append(cells)
    return rows


def render_text(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows):
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    for r in rows[1:]:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def rooms_note(params, servers):
    """The footnote under the table that says what the rooms scenario did."""
    n, size, m = params["clients"], params["room_size"], params["room_messages"]
    skipped = [SERVERS[s] for s in servers if s not in ROOMS_SERVERS]
    return (f"rooms: {n} users in {n // size} named rooms of {size} (each created or joined exactly one) and all in general, "
            f"plus one sender in general only. Each round, on the same server and connections, one after the other (order "
            f"alternating): a general burst ({params['messages']} group messages to all {n}, the fan-out load) and a room "
            f"burst (every user writes {m} messages to its room at once: {n * m:,} messages, each to the {size - 1} other "
            f"members, {n * m * (size - 1):,} deliveries). Per delivery and per message: each burst's own server CPU; the "
            f"ratio is taken within each round, then the median. Non-members: frames of a room's messages received by "
            f"users not in that room, summed over the rounds; any such frame, or any other frame naming another room, "
            f"fails the scenario." + (f" Not run for {', '.join(skipped)}: no rooms." if skipped else ""))


# ---- main ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Side-by-side chat server benchmark (see bench/README.md).")
    p.add_argument("--quick", action="store_true", help="fewer rounds and shorter latency runs (about 7 minutes)")
    p.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from: {', '.join(SERVERS)}")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    p.add_argument("--rounds", type=int, default=None, help="measured rounds per scenario (overrides the mode's)")
    p.add_argument("--retries", type=int, default=None,
                   help="extra rounds per scenario to replace rounds that other processes disturbed (default 3, quick 1)")
    p.add_argument("--quiet-wait", type=float, default=None,
                   help="seconds each round may wait for unrelated processes to go quiet first (default 10, quick 2)")
    p.add_argument("--quiet-budget", type=float, default=None,
                   help="seconds the whole run may spend waiting for quiet (default 120, quick 20)")
    p.add_argument("--lock-wait", type=float, default=1200,
                   help="seconds to wait for another bench run on this machine to finish (default 1200)")
    p.add_argument("--memory-names", choices=("distinct", "shared"), default="distinct",
                   help="memory scenario: one user per idle connection (default), or all as one user "
                        "(no presence traffic; lifts our server's connections-per-user limit)")
    p.add_argument("--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
                   help="MariaDB server where the bench creates and drops its databases")
    p.add_argument("--redis-url", default="private",
                   help="cluster scenario: 'private' (default) starts a redis-server of its own on a free loopback port, "
                        "so that Redis's CPU is only ours; or the URL of a running Redis, e.g. redis://127.0.0.1:6379/0. "
                        "Either way the keys go under a prefix unique to the run and are deleted at the end")
    p.add_argument("--cluster-db", choices=("sqlite", "mariadb"), default="sqlite",
                   help="cluster scenario: the database of every configuration (default sqlite: one file per configuration, "
                        "shared by its processes)")
    p.add_argument("--cluster-spread", action="store_true",
                   help="cluster scenario: run the second of the two processes on the load client's core instead of the "
                        "server core (default: every server process on the server core)")
    p.add_argument("--rooms-users", type=int, default=None,
                   help="rooms scenario: connected users (default 1000; a multiple of 10, the room size), e.g. 100 for a "
                        "smoke run")
    p.add_argument("--seed", action=argparse.BooleanOptionalAction, default=True,
                   help="give our servers history before the connect scenarios (open, memory, storm, herd): a database "
                        "seeded once per store through the protocol (the plan's seed: 200 users, 20 rooms, 50,000 "
                        "messages, read markers), copied for every fresh server (default on; --no-seed: empty databases)")
    p.add_argument("--set", action="append", default=[], metavar="SCENARIO.KEY=VALUE",
                   help="override one parameter of a scenario's plan, e.g. --set open.clients=200 --set herd.clients=200 "
                        "(repeatable; keys as in FULL/QUICK in this file; for smoke runs at small sizes)")
    p.add_argument("--server-core", type=int, default=1, help="the core the servers are pinned to (default 1)")
    p.add_argument("--client-core", type=int, default=0, help="the core the load client and this script are pinned to (default 0)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="where the JSON and markdown copies go")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    from urllib.parse import urlsplit

    u = urlsplit(args.mysql_url)
    args.mysql_admin = dict(host=u.hostname or "127.0.0.1", port=u.port or 3306, user=u.username or "root", password=u.password or "")
    return args


LOCK_PATH = os.path.join(tempfile.gettempdir(), "chat-bench.lock")


def take_lock(wait):
    """One bench run at a time on a machine: two would disturb each other's figures. Returns the open lock file."""
    import fcntl

    f = open(LOCK_PATH, "a+")
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.seek(0)
                say(f"another bench run (pid {f.read().strip() or '?'}) still holds {LOCK_PATH}; giving up")
                sys.exit(2)
            if not told:
                f.seek(0)
                say(f"another bench run (pid {f.read().strip() or '?'}) is in progress; waiting up to {wait:.0f} s for it")
                told = True
            time.sleep(1)


def main(argv=None):
    opts = parse_args(argv)
    lock = take_lock(opts.lock_wait)  # noqa: F841 - held until exit
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        say("warning: one CPU only: server and load client share it, figures are not comparable with two-core runs")
        opts.server_core = opts.client_core = 0
    os.sched_setaffinity(0, {opts.client_core})
    nofile = _raise_nofile()
    CLEANUP.mysql_admin = opts.mysql_admin

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(CLEANUP.kill_all)

    if opts.quiet_wait is None:
        opts.quiet_wait = 2.0 if opts.quick else 10.0
    if opts.quiet_budget is None:
        opts.quiet_budget = 20.0 if opts.quick else 120.0
    opts.quiet_used = 0.0
    if opts.retries is None:
        opts.retries = 1 if opts.quick else 3
    plan = QUICK if opts.quick else FULL
    plan = {k: dict(v) for k, v in plan.items()}
    if opts.rounds:
        for v in plan.values():
            v["rounds"] = opts.rounds
    if opts.rooms_users:
        plan["rooms"]["clients"] = opts.rooms_users
    for item in opts.set:
        key, _, value = item.partition("=")
        scen, _, field = key.partition(".")
        if scen not in plan or not field or not value:
            say(f"bad --set {item!r}: want SCENARIO.KEY=VALUE with SCENARIO one of {', '.join(plan)}")
            return 2
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                pass
        plan[scen][field] = value
    info = machine_info(opts.mysql_admin)
    if "mariadb" in opts.servers and str(info.get("mariadb", "")).startswith("unreachable"):
        say(f"MariaDB {info['mariadb']}: skipping ours/MariaDB")
        opts.servers = [s for s in opts.servers if s != "mariadb"]
    opts.db_pid = mariadbd_pid() if "mariadb" in opts.servers else None
    if "cluster" in opts.scenarios and opts.cluster_db == "mariadb" and str(info.get("mariadb", "")).startswith("unreachable"):
        say(f"MariaDB {info['mariadb']}: the cluster scenario needs it with --cluster-db mariadb; skipping it")
        opts.scenarios = [s for s in opts.scenarios if s != "cluster"]
    if "cluster" in opts.scenarios and opts.cluster_db == "mariadb" and not opts.db_pid:
        opts.db_pid = mariadbd_pid()
    wants_ours = {"sqlite", "mariadb"} & set(opts.servers) or "cluster" in opts.scenarios
    opts.our_flags = our_server_flags(opts.memory_names) if wants_ours else []
    info["our_server_flags"] = shlex.join(opts.our_flags)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(opts.out, exist_ok=True)
    logdir = os.path.join(opts.out, f"logs-{stamp}")
    os.makedirs(logdir, exist_ok=True)
    say(f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['date']}; open files limit {nofile[0]}")
    say(f"mode: {'quick' if opts.quick else 'full'}; servers: {', '.join(opts.servers)}; scenarios: {', '.join(opts.scenarios)}; logs in {logdir}")

    t_start = time.monotonic()
    seeds = Seeds(opts, plan["seed"], logdir) if opts.seed else None
    raw = {s: {} for s in opts.servers}
    figures = {s: {} for s in opts.servers}
    failures = {s: {} for s in opts.servers}
    notes = []
    cluster_result = None
    ceiling_results = None
    interrupted = False
    try:
        for scenario in opts.scenarios:
            if scenario == "ceiling":
                say(f"[ceiling] 1, 2 and 4 processes, {opts.cluster_db} and Redis shared, every client sending as fast "
                    "as acks allow")
                ceiling_results, scen_notes = run_ceiling(opts, plan["ceiling"], logdir)
                notes += scen_notes
                continue
            if scenario == "cluster":
                t0 = time.monotonic()
                say(f"[cluster] fan-out with 1 and 2 processes over Redis ({opts.cluster_db}; Redis: {opts.redis_url})")
                cluster_result, scen_notes = run_cluster(opts, plan["cluster"], logdir)
                cluster_result["scenario_wall_s"] = round(time.monotonic() - t0, 1)
                notes += scen_notes
                if not cluster_result.get("ok"):
                    say(f"[cluster] FAILED: {cluster_result.get('failure')}")
                continue
            for kind in opts.servers:
                if scenario == "rooms" and kind not in ROOMS_SERVERS:
                    say(f"[{SERVERS[kind]}] rooms: skipped (the peers have no rooms)")
                    continue
                if scenario == "herd" and kind not in HERD_SERVERS:
                    say(f"[{SERVERS[kind]}] herd: skipped (the peers store nothing and have no ?since=)")
                    continue
                t0 = time.monotonic()
                result, scen_notes = run_scenario(opts, kind, scenario, plan[scenario], logdir,
                                                  seeds if scenario in CONNECT_SCENARIOS else None)
                result["scenario_wall_s"] = round(time.monotonic() - t0, 1)
                raw[kind][scenario] = result
                notes += scen_notes
                if result.get("ok"):
                    figures[kind].update(figures_for(scenario, result))
                else:
                    failures[kind][scenario] = result
                    say(f"[{SERVERS[kind]}] {scenario} FAILED: {result.get('failure')}")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping servers and writing what was measured")
    finally:
        CLEANUP.kill_all()

    elapsed = time.monotonic() - t_start
    table = build_table(opts.servers, figures, failures)
    spread = spread_table(opts.servers, figures)
    footnotes = [
        "Medians over rounds. CPU is the server process's own (utime+stime; per-thread schedstat when it agrees), "
        "bracketed per round; the database server's CPU is not included.",
        "Ratios are ours ÷ peer: below 1 is better for CPU, latency, memory and storm; above 1 is better for the rates.",
        f"Our server ran with: {info.get('our_server_flags') or '(defaults)'}; memory scenario names: {opts.memory_names}.",
    ]
    all_flags = "".join(flags for f in figures.values() for _, _, flags in f.values())
    if "*" in all_flags:
        footnotes.append("* the load client used over 90% of its core in those rounds: the figure may be limited by the client.")
    if "!" in all_flags:
        footnotes.append("! other processes on this machine used over 10% of the pinned cores during those rounds "
                         "(see the load logs): the figure is disturbed; rerun on a quiet machine.")
    if "rooms" in opts.scenarios:
        footnotes.append(rooms_note(plan["rooms"], opts.servers))
    if seeds is not None and seeds.results:
        sp = plan["seed"]
        took = ", ".join(f"{SERVERS[k]} {r.get('wall_s', 0):.0f} s" for k, r in seeds.results.items())
        footnotes.append(f"History: ours ran the connect scenarios ({', '.join(CONNECT_SCENARIOS)}) on a copy of a database "
                         f"seeded through the protocol: {sp['clients']} users, {sp['rooms']} rooms, {sp['seed_messages']:,} "
                         f"messages (20% general, 60% rooms, 20% direct), read markers for each user's conversations "
                         f"(seeding, not measured: {took}). --no-seed: empty databases.")
    failure_text = []
    for kind in opts.servers:
        for scenario, result in failures[kind].items():
            failure_text.append(f"{SERVERS[kind]} / {scenario}: {result.get('failure')}")
            for key in ("connect_failures", "error_examples", "close_examples", "failure_examples", "foreign_examples"):
                if result.get(key):
                    failure_text.append(f"    {key}: {result[key][:3]}")
            if result.get("unexpected_disconnects"):
                failure_text.append(f"    unexpected disconnects: {result['unexpected_disconnects']}")
            if result.get("server_log_tail"):
                failure_text.append("    server log tail:\n" + "\n".join("      " + l for l in result["server_log_tail"].splitlines()))

    machine_line = (f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux {info['kernel']}, "
                    f"Python {info['python']}, MariaDB {info.get('mariadb')}; date {info['date']}; git {info['git']}; "
                    f"mode {'quick' if opts.quick else 'full'}; took {elapsed / 60:.1f} min, {opts.quiet_used:.0f} s of it waiting for quiet")
    has_main = len(table) > 1
    text = [machine_line, ""] + ([render_text(table), "", *footnotes, "", render_text(spread)] if has_main else [])
    cluster_figs, cluster_rows, cluster_notes, cluster_fail = {}, None, [], []
    if cluster_result is not None:
        cluster_figs = cluster_figures(cluster_result) if cluster_result.get("rounds") else {}
        cluster_rows = cluster_table(cluster_figs, plan["cluster"].get("paced_rate")) if cluster_figs else None
        setup = cluster_result.get("setup", {})
        where = ("every server process on core " + str(opts.server_core) if not opts.cluster_spread else
                 f"the second of the 2 processes on core {opts.client_core}, with the load client; the others on core {opts.server_core}")
        pc = plan["cluster"]
        cluster_notes = [
            f"Multi-process fan-out: {pc['clients']} receivers (split evenly over the processes) and one sender (on the "
            f"first process). burst: the sender writes {pc['messages']} group messages back to back; paced: "
            f"{pc.get('paced_messages')} messages at {pc.get('paced_rate')}/s, so that each is delivered on its own; sender "
            f"only: {pc['messages'] * 10} messages back to back and no receivers. Every configuration runs in every round, "
            f"one after the other (order rotated); medians over {pc['rounds']} rounds. Database: {setup.get('db')} (one per "
            f"configuration, shared by its processes); Redis: {setup.get('redis')} {setup.get('redis_version') or ''}, not "
            f"pinned; {where}; load client on core {opts.client_core}. Every receiver must get every message once and in "
            f"order, else the round fails.",
            "Servers' CPU: the sum over the configuration's server processes. Redis CPU: redis-server's own, minus its "
            "background rate (measured over the same round's `1 process` run, which does not use Redis). "
            "Ratios and differences against `1 process` are paired within each round, then the median is taken.",
            "Deliveries/s: every server process of a configuration shares one core (unless --cluster-spread), so 2 "
            "processes cannot deliver faster than 1 here; the rate also depends on the load client (about 1 us per "
            "delivery of its own).",
        ]
        cflags = "".join(f[2] for f in cluster_figs.values())
        if "*" in cflags:
            cluster_notes.append("* the load client used over 90% of its core in those rounds: the figure may be limited by the client.")
        if "!" in cflags:
            cluster_notes.append("! other processes on this machine used over 10% of a core during those rounds: the figure is disturbed.")
        if not cluster_result.get("ok"):
            cluster_fail.append(f"multi-process / cluster: {cluster_result.get('failure')}")
            for fr in cluster_result.get("failed_rounds", []):
                cluster_fail.append(f"    {fr}")
            for key in ("connect_failures", "error_examples", "close_examples", "stderr"):
                if cluster_result.get(key):
                    cluster_fail.append(f"    {key}: {cluster_result[key] if key == 'stderr' else cluster_result[key][:3]}")
            for tag, tail in (cluster_result.get("server_log_tails") or {}).items():
                cluster_fail.append(f"    {tag} log tail:\n" + "\n".join("      " + l for l in tail.splitlines()))
        failure_text += cluster_fail
        probe_rows = redis_probe_table(cluster_result.get("redis_probe"))
        if cluster_result.get("redis_probe") and not probe_rows:
            cluster_fail.append(f"multi-process / Redis probe: {cluster_result['redis_probe'].get('failure')}")
            failure_text.append(cluster_fail[-1])
        text += ["Multi-process fan-out (cluster scenario)", ""]
        if cluster_rows:
            text += [render_text(cluster_rows), "", *cluster_notes, "", render_text(cluster_spread(cluster_figs))]
        else:
            text += ["(no figures: see the failures)"]
        if probe_rows:
            text += ["", render_text(probe_rows), "", *PROBE_NOTES]
    if ceiling_results:
        pc = plan["ceiling"]
        ceiling_note = (f"Cluster ceiling: {pc['clients']} clients spread over the processes, each sending direct "
                        f"messages to a partner on the next process with {pc['window']} unacknowledged, for "
                        f"{pc['duration']} s; database {opts.cluster_db}, a private Redis; every server process on core "
                        f"{opts.server_core}. committed/s: acks (an ack means committed); delivered/s: directs received. "
                        "CPU shares over the run; row-lock wait: InnoDB's Innodb_row_lock_time per second (mostly the "
                        "chat_meta row that assigns ids at commit: 1.0 means a transaction always waiting); highest: the "
                        "largest of the hottest process's CPU, Redis's, mariadbd's and the row-lock wait.")
        text += ["", "Cluster ceiling", "", render_text(ceiling_table(ceiling_results)), "", ceiling_note]
    if failure_text:
        text += ["", "Failures:", *failure_text]
    if notes:
        text += ["", "Server log notes:", *[f"  {n}" for n in notes[:40]]]
        if len(notes) > 40:
            text.append(f"  ... {len(notes) - 40} more in the JSON")
    if interrupted:
        text += ["", "(interrupted: partial results)"]
    print("\n".join(text), flush=True)

    md = [f"# Chat server benchmark, {info['date']}", "", machine_line, ""]
    if has_main:
        md += [render_markdown(table), "", *[f"- {f}" for f in footnotes], "", render_markdown(spread)]
    if cluster_result is not None:
        md += ["", "## Multi-process fan-out", ""]
        if cluster_rows:
            md += [render_markdown(cluster_rows), "", *[f"- {f}" for f in cluster_notes], "",
                   render_markdown(cluster_spread(cluster_figs))]
        else:
            md += ["(no figures: see the failures)"]
        if probe_rows:
            md += ["", render_markdown(probe_rows), "", *[f"- {n}" for n in PROBE_NOTES]]
    if ceiling_results:
        md += ["", "## Cluster ceiling", "", render_markdown(ceiling_table(ceiling_results)), "", f"- {ceiling_note}"]
    if failure_text:
        md += ["", "## Failures", "", "```", *failure_text, "```"]
    if notes:
        md += ["", "## Server log notes", "", "```", *notes[:200], "```"]
    payload = dict(machine=info, mode="quick" if opts.quick else "full", plan=plan, servers=opts.servers,
                   scenarios=opts.scenarios, memory_names=opts.memory_names, seeds=seeds.results if seeds else None, elapsed_s=elapsed, interrupted=interrupted,
                   figures={s: {k: dict(median=v[0], rounds=v[1], flags=v[2]) for k, v in f.items()} for s, f in figures.items()},
                   raw=raw, notes=notes, ceiling=ceiling_results, table=table, cluster=cluster_result, cluster_table=cluster_rows,
                   cluster_figures={k: dict(median=v[0], rounds=v[1], flags=v[2]) for k, v in cluster_figs.items()})
    for name, content in ((f"bench-{stamp}.md", "\n".join(md) + "\n"), (f"bench-{stamp}.json", json.dumps(payload, indent=1) + "\n")):
        with open(os.path.join(opts.out, name), "w") as f:
            f.write(content)
        shutil.copyfile(os.path.join(opts.out, name), os.path.join(opts.out, "latest" + os.path.splitext(name)[1]))
    say(f"written: {os.path.join(opts.out, f'bench-{stamp}.md')} and .json (also latest.md / latest.json)")
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
