"""Wall-clock time as the database and the wire keep it: whole milliseconds since the epoch."""
import time


def now_ms():
    return int(time.time() * 1000)
