"""The benchmark: our server (SQLite, MariaDB) and two peers side by side, one pinned core each for server and load.

    python3 bench/run.py            # everything (about 12 minutes)
    python3 bench/run.py --quick    # fewer rounds, shorter latency runs (about 3 minutes)
    python3 bench/run.py --servers sqlite,naive --scenarios fanout,direct

Each server runs pinned to one core (`taskset -c 1`), the load client (bench/loadgen.py, picows on uvloop)
to the other (`taskset -c 0`), and so does this script. Everything is on 127.0.0.1. Servers are killed at
the end even on error or Ctrl-C; the MariaDB databases the bench creates are dropped. See bench/README.md.
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
}
SCENARIOS = ("fanout", "direct", "latency", "memory", "storm")

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
    ("memory_connect", "memory: s to open the 10000 (100 at a time)", "s", None, "low"),
]

FULL = dict(
    fanout=dict(rounds=7, warmup=1, clients=1000, messages=300),
    direct=dict(rounds=5, warmup=1, pairs=200, messages=100),
    latency=dict(rounds=3, warmup=1, clients=100, rate=200, duration=5),
    memory=dict(rounds=2, steps="5000,10000"),
    storm=dict(rounds=5, clients=2000),
)
QUICK = dict(
    fanout=dict(rounds=2, warmup=1, clients=1000, messages=300),
    direct=dict(rounds=2, warmup=1, pairs=200, messages=100),
    latency=dict(rounds=1, warmup=1, clients=100, rate=200, duration=2),
    memory=dict(rounds=1, steps="5000"),
    storm=dict(rounds=1, clients=2000),
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
        self.mysql_admin = None

    def kill_all(self):
        for pid, proc in list(self.procs.items()):
            stop_process(proc, grace=2)
            self.procs.pop(pid, None)
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

    def __init__(self, kind, opts, log_path):
        self.kind = kind
        self.opts = opts
        self.log_path = log_path
        self.database = None
        self.tmpdir = None
        self.proc = None
        self.port = None

    def command(self):
        if self.kind == "sqlite":
            self.tmpdir = tempfile.mkdtemp(prefix="chat-bench-")
            CLEANUP.dirs.append(self.tmpdir)
            return [PY, os.path.join(ROOT, "run_server.py"), "--port", "0", "--database", f"sqlite:///{self.tmpdir}/chat.db",
                    *self.opts.our_flags]
        if self.kind == "mariadb":
            self.database = create_database(self.opts.mysql_admin)
            a = self.opts.mysql_admin
            auth = a["user"] + (":" + a["password"] if a["password"] else "")
            url = f"mysql://{auth}@{a['host']}:{a['port']}/{self.database}"
            return [PY, os.path.join(ROOT, "run_server.py"), "--port", "0", "--database", url, *self.opts.our_flags]
        if self.kind == "naive":
            return [PY, os.path.join(HERE, "peers", "naive_seed.py"), "--port", "0"]
        if self.kind == "websockets":
            return [PY, os.path.join(HERE, "peers", "websockets_server.py"), "--port", "0"]
        raise ValueError(self.kind)

    def start(self, timeout=30.0):
        cmd = ["taskset", "-c", str(self.opts.server_core)] + self.command()
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


def run_load(opts, server, scenario, params, rounds, log_path):
    """Run bench/loadgen.py pinned to the client core against `server`; returns its JSON result."""
    cmd = ["taskset", "-c", str(opts.client_core), PY, os.path.join(HERE, "loadgen.py"), scenario, "--url", server.url,
           "--pid", str(server.proc.pid), "--rounds", str(rounds)]
    for key, value in params.items():
        if key != "rounds":
            cmd += [f"--{key}", str(value)]
    if scenario == "memory":
        cmd += ["--names", opts.memory_names]
    if server.kind in ("sqlite", "mariadb") and scenario != "storm":
        cmd += ["--wait-history"]
    if server.kind == "mariadb" and opts.db_pid:
        cmd += ["--db-pid", str(opts.db_pid)]
    # A bound for the whole load run: connects, every round's wait (60 s each at most) and closing.
    if scenario in ("fanout", "direct", "latency"):
        cmd += ["--retries", str(opts.retries)]
    budget = max(0.0, opts.quiet_budget - opts.quiet_used)
    cmd += ["--quiet-wait", str(min(opts.quiet_wait, budget)), "--quiet-budget", str(budget)]
    limit = 120 + budget + (rounds + params.get("warmup", 0) + opts.retries) * 90 + (600 if scenario == "memory" else 0)
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


def run_scenario(opts, kind, scenario, params, logdir):
    """All rounds of one scenario against one server kind. Fresh server per scenario (per round for memory/storm)."""
    per_round_server = scenario in ("memory", "storm")
    runs = params["rounds"] if per_round_server else 1
    results = []
    notes = []
    for i in range(runs):
        tag = f"{kind}-{scenario}" + (f"-{i + 1}" if per_round_server else "")
        server = Server(kind, opts, os.path.join(logdir, f"{tag}.server.log"))
        try:
            server.start()
            say(f"[{SERVERS[kind]}] {scenario}{f' round {i + 1}/{runs}' if per_round_server else ''}: "
                f"pid {server.proc.pid} on core {opts.server_core}, {server.url}")
            result = run_load(opts, server, scenario, params, 1 if per_round_server else params["rounds"],
                              os.path.join(logdir, f"{tag}.load.log"))
            if server.proc.poll() is not None:
                result["ok"] = False
                result["failure"] = (result.get("failure") or "") + f"; server exited with {server.proc.returncode}"
        except Exception as e:  # noqa: BLE001
            result = dict(ok=False, failure=f"{type(e).__name__}: {e}")
        finally:
            code, graceful = server.stop()
        if code not in (0, None, -signal.SIGTERM) or graceful is False:
            notes.append(f"{tag}: server exit code {code} ({'after SIGTERM' if graceful else 'killed'})")
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


# ---- figures and the table -----------------------------------------------------------------------------


def _rounds_of(result, scenario):
    """The per-round rows of a scenario result (memory/storm: one row per server start)."""
    if scenario in ("memory", "storm"):
        starts = result.get("per_server_start", [result])
        return [r for r in starts if r.get("ok")]
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
    return {}


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}"
    if unit in ("KB",):
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def build_table(servers, figures, failures):
    """Rows of cells: figure, target, each server, then ours÷peer ratios."""
    ours = [s for s in servers if s in ("sqlite", "mariadb")]
    peers = [s for s in servers if s in ("naive", "websockets")]
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


# ---- main ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Side-by-side chat server benchmark (see bench/README.md).")
    p.add_argument("--quick", action="store_true", help="fewer rounds and shorter latency runs (about 3 minutes)")
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
    info = machine_info(opts.mysql_admin)
    if "mariadb" in opts.servers and str(info.get("mariadb", "")).startswith("unreachable"):
        say(f"MariaDB {info['mariadb']}: skipping ours/MariaDB")
        opts.servers = [s for s in opts.servers if s != "mariadb"]
    opts.db_pid = mariadbd_pid() if "mariadb" in opts.servers else None
    opts.our_flags = our_server_flags(opts.memory_names) if {"sqlite", "mariadb"} & set(opts.servers) else []
    info["our_server_flags"] = shlex.join(opts.our_flags)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(opts.out, exist_ok=True)
    logdir = os.path.join(opts.out, f"logs-{stamp}")
    os.makedirs(logdir, exist_ok=True)
    say(f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['date']}; open files limit {nofile[0]}")
    say(f"mode: {'quick' if opts.quick else 'full'}; servers: {', '.join(opts.servers)}; scenarios: {', '.join(opts.scenarios)}; logs in {logdir}")

    t_start = time.monotonic()
    raw = {s: {} for s in opts.servers}
    figures = {s: {} for s in opts.servers}
    failures = {s: {} for s in opts.servers}
    notes = []
    interrupted = False
    try:
        for scenario in opts.scenarios:
            for kind in opts.servers:
                t0 = time.monotonic()
                result, scen_notes = run_scenario(opts, kind, scenario, plan[scenario], logdir)
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
    failure_text = []
    for kind in opts.servers:
        for scenario, result in failures[kind].items():
            failure_text.append(f"{SERVERS[kind]} / {scenario}: {result.get('failure')}")
            for key in ("connect_failures", "error_examples", "close_examples", "failure_examples"):
                if result.get(key):
                    failure_text.append(f"    {key}: {result[key][:3]}")
            if result.get("unexpected_disconnects"):
                failure_text.append(f"    unexpected disconnects: {result['unexpected_disconnects']}")
            if result.get("server_log_tail"):
                failure_text.append("    server log tail:\n" + "\n".join("      " + l for l in result["server_log_tail"].splitlines()))

    machine_line = (f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux {info['kernel']}, "
                    f"Python {info['python']}, MariaDB {info.get('mariadb')}; date {info['date']}; git {info['git']}; "
                    f"mode {'quick' if opts.quick else 'full'}; took {elapsed / 60:.1f} min, {opts.quiet_used:.0f} s of it waiting for quiet")
    text = [machine_line, "", render_text(table), "", *footnotes, "", render_text(spread)]
    if failure_text:
        text += ["", "Failures:", *failure_text]
    if notes:
        text += ["", "Server log notes:", *[f"  {n}" for n in notes[:40]]]
        if len(notes) > 40:
            text.append(f"  ... {len(notes) - 40} more in the JSON")
    if interrupted:
        text += ["", "(interrupted: partial results)"]
    print("\n".join(text), flush=True)

    md = [f"# Chat server benchmark, {info['date']}", "", machine_line, "", render_markdown(table), "",
          *[f"- {f}" for f in footnotes], "", render_markdown(spread)]
    if failure_text:
        md += ["", "## Failures", "", "```", *failure_text, "```"]
    if notes:
        md += ["", "## Server log notes", "", "```", *notes[:200], "```"]
    payload = dict(machine=info, mode="quick" if opts.quick else "full", plan=plan, servers=opts.servers,
                   scenarios=opts.scenarios, memory_names=opts.memory_names, elapsed_s=elapsed, interrupted=interrupted,
                   figures={s: {k: dict(median=v[0], rounds=v[1], flags=v[2]) for k, v in f.items()} for s, f in figures.items()},
                   raw=raw, notes=notes, table=table)
    for name, content in ((f"bench-{stamp}.md", "\n".join(md) + "\n"), (f"bench-{stamp}.json", json.dumps(payload, indent=1) + "\n")):
        with open(os.path.join(opts.out, name), "w") as f:
            f.write(content)
        shutil.copyfile(os.path.join(opts.out, name), os.path.join(opts.out, "latest" + os.path.splitext(name)[1]))
    say(f"written: {os.path.join(opts.out, f'bench-{stamp}.md')} and .json (also latest.md / latest.json)")
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
