"""What any Python server pays on this machine for a paced message, with no chat code: prints JSON.

lone: a bare epoll loop pinned to core 1 wakes for one ~150-byte frame that a process on core 0 sends every 10 ms,
reads it and writes two frames (a delivery and an ack): CPU per message.
paced: the same loop writes one ~150-byte frame to each of 100 loopback TCP sockets (read by a process on core 0)
every 5 ms: CPU per message (100 writes). burst: 30 frames per write instead: CPU per message.
"""
import json
import os
import resource
import select
import socket
import time

FRAME = b"\x81\x7e\x00\x96" + b"x" * 150


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _listener():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    return ls, ls.getsockname()[1]


def lone(n=300, gap=0.01):
    ls, port = _listener()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {0})
        s = socket.create_connection(("127.0.0.1", port))
        r = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.3)
        for _ in range(n):
            time.sleep(gap)
            s.send(FRAME)
            s.recv(65536)
            r.recv(65536)
        os._exit(0)
    os.sched_setaffinity(0, {1})
    a, b = ls.accept()[0], ls.accept()[0]
    for c in (a, b):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setblocking(False)
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    c0, got = _cpu(), 0
    while got < n:
        ep.poll()
        data = a.recv(65536)
        got += 1
        b.send(data)
        a.send(b"\x81\x03ack")
    used = _cpu() - c0
    os.waitpid(pid, 0)
    for c in (a, b, ls):
        c.close()
    return used / n * 1e6


def fanout(receivers=100, messages=300, per_write=1, gap=0.005):
    ls, port = _listener()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {0})
        ep = select.epoll()
        socks = {}
        for _ in range(receivers):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
            socks[s.fileno()] = s
        while socks:
            for fd, _ in ep.poll():
                try:
                    if not socks[fd].recv(65536):
                        ep.unregister(fd)
                        del socks[fd]
                except BlockingIOError:
                    pass
        os._exit(0)
    os.sched_setaffinity(0, {1})
    conns = [ls.accept()[0] for _ in range(receivers)]
    for c in conns:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = FRAME * per_write
    writes = messages // per_write
    c0 = _cpu()
    for _ in range(writes):
        time.sleep(gap)
        for c in conns:
            c.send(data)
    used = _cpu() - c0
    for c in conns:
        c.close()
    ls.close()
    os.waitpid(pid, 0)
    return used / (writes * per_write) * 1e6


if __name__ == "__main__":
    print(json.dumps(dict(lone_us=lone(), paced_us=fanout(), burst_us=fanout(per_write=30, messages=900))))
