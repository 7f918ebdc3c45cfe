"""Same-run A/B of our server's per-delivery (fanout) and per-direct-message CPU between source trees.

    git worktree add /tmp/base <commit>
    python3 bench/ab.py --tree /tmp/base --tree .                      # SQLite, 3 repeats: about 4 minutes
    python3 bench/ab.py --tree /tmp/base --tree . --store mariadb --repeats 2
    python3 bench/ab.py --tree . --tree ". --recent-records 0"          # a tree with extra server flags

Each repeat starts a fresh server of every tree in turn (so the trees alternate and share the machine's drift),
pinned to core 1, with bench/run.py's flags (those the tree's run_server.py accepts), and drives it with this tree's
bench/loadgen.py on core 0: `fanout` (1,000 receivers x 300 messages) and `direct` (200 pairs x 100 messages), one
warm-up round and `--rounds` measured rounds each. Prints per tree the median CPU per delivery / per direct message,
every repeat's median, and each tree's ratio to the first tree per repeat. Run it on a quiet machine.
"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable
FLAGS = [("--rate-limit", "1e9"), ("--rate-burst", "1000000000"), ("--bots", ""),
         ("--max-connections-per-address", "1000000")]
READY = re.compile(rb"listening on http://[0-9.]+:(\d+)/")
SCENARIOS = {"fanout": ("cpu_us_per_delivery", ["--clients", "1000", "--messages", "300"]),
             "direct": ("cpu_us_per_message", ["--pairs", "200", "--messages", "100"])}


def tree_flags(tree):
    helptext = subprocess.run([PY, os.path.join(tree, "run_server.py"), "--help"], capture_output=True, text=True,
                              timeout=60, cwd=tree).stdout
    flags = []
    for flag, value in FLAGS:
        if re.search(re.escape(flag) + r"\b", helptext):
            flags += [flag, value]
    return flags


def mysql(sql):
    subprocess.run(["mariadb", "-h127.0.0.1", "-uroot", "-e", sql], check=True, timeout=60)


class Server:
    def __init__(self, spec, store, flags):
        tree, *extra = shlex.split(spec)
        self.tree, self.store, self.flags = os.path.abspath(tree), store, flags + extra
        self.tmp = tempfile.mkdtemp(prefix="chat-ab-")
        self.db = None

    def __enter__(self):
        if self.store == "sqlite":
            url = f"sqlite:///{self.tmp}/chat.db"
        else:
            self.db = "ab_" + uuid.uuid4().hex[:10]
            mysql(f"CREATE DATABASE {self.db}")
            url = f"mysql://root@127.0.0.1:3306/{self.db}"
        self.log_path = os.path.join(self.tmp, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["taskset", "-c", "1", PY, os.path.join(self.tree, "run_server.py"), "--port", "0",
                                      "--database", url, *self.flags], cwd=self.tree, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONHASHSEED="0", PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                m = READY.search(f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"{self.tree} did not start: see {self.log_path}")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if self.db:
            mysql(f"DROP DATABASE IF EXISTS {self.db}")


def mariadbd_pid():
    out = subprocess.run(["pidof", "mariadbd"], capture_output=True, text=True, timeout=10).stdout.split()
    return out[0] if out else None


def measure(server, scenario, rounds):
    """The median of the server's CPU per delivery or message over the rounds, and (MariaDB, direct) of mariadbd's."""
    key, extra = SCENARIOS[scenario]
    cmd = ["taskset", "-c", "0", PY, os.path.join(HERE, "loadgen.py"), scenario, "--url", f"ws://127.0.0.1:{server.port}",
           "--pid", str(server.proc.pid), "--rounds", str(rounds), "--wait-history", *extra]
    db_pid = mariadbd_pid() if server.store == "mariadb" else None
    if db_pid:
        cmd += ["--db-pid", db_pid]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("ok"):
        raise RuntimeError(f"{scenario} failed on {server.tree}: {result.get('failure')}")
    db = [r["db_cpu_us_per_message"] for r in result["rounds"] if "db_cpu_us_per_message" in r]
    return statistics.median(r[key] for r in result["rounds"]), (statistics.median(db) if db else None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", required=True, help="a source tree, optionally followed by server flags in the same argument (give two or more; the first is the base)")
    p.add_argument("--store", choices=("sqlite", "mariadb"), default="sqlite")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per server start")
    p.add_argument("--scenarios", default="fanout,direct")
    args = p.parse_args()
    trees = args.tree
    flags = {t: tree_flags(os.path.abspath(shlex.split(t)[0])) for t in trees}
    scenarios = args.scenarios.split(",")
    results = {(t, s): [] for t in trees for s in scenarios}
    db_results = {(t, s): [] for t in trees for s in scenarios}
    for repeat in range(args.repeats):
        order = trees if repeat % 2 == 0 else trees[::-1]
        for scenario in scenarios:
            for tree in order:
                with Server(tree, args.store, flags[tree]) as server:
                    value, db = measure(server, scenario, args.rounds)
                results[(tree, scenario)].append(value)
                if db is not None:
                    db_results[(tree, scenario)].append(db)
                print(f"repeat {repeat + 1} {scenario:6} {tree}: {value:.3f} us" + (f" (mariadbd {db:.3f} us)" if db else ""),
                      file=sys.stderr, flush=True)
    summary = {}
    for scenario in scenarios:
        base = results[(trees[0], scenario)]
        print(f"\n{scenario} ({SCENARIOS[scenario][0]}, {args.store})")
        for tree in trees:
            values = results[(tree, scenario)]
            ratios = [v / b for v, b in zip(values, base)]
            print(f"  {tree}: median {statistics.median(values):.3f}  repeats {[round(v, 3) for v in values]}"
                  f"  ratio to base per repeat {[round(r, 3) for r in ratios]}")
            summary[f"{scenario} {tree}"] = dict(values=values, ratios=ratios)
            db = db_results[(tree, scenario)]
            if db:
                print(f"    mariadbd's CPU per message: median {statistics.median(db):.3f}  repeats {[round(v, 3) for v in db]}")
                summary[f"{scenario} {tree}"]["mariadbd"] = db
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
