"""The one way tests wait for something: poll an observable condition until it holds, or fail after a bounded time."""
import time


def wait_until(condition, timeout=10.0, *, interval=0.02, message="the condition", sleep=time.sleep):
    """Call `condition()` until it returns a true value, and return that value; fail after `timeout` seconds.

    `message` names what was waited for in the failure. `sleep` paces the polls; an in-process test of gevent code
    passes gevent.sleep so the greenlets it waits for can run.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        sleep(interval)
