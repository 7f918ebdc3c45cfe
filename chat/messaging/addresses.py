"""Live websockets per client address, so one address cannot hold every socket the server can keep."""


class AddressCounts:
    """How many websockets each client address has open; `admit` refuses one past `limit`."""

    def __init__(self):
        self._open = {}

    def admit(self, address, limit):
        """Count one more socket for `address`; False (and nothing counted) when it already has `limit`."""
        count = self._open.get(address, 0)
        if count >= limit:
            return False
        self._open[address] = count + 1
        return True

    def hold(self, address):
        """Count one more socket for `address` whatever its count: one the caller already admitted changes hands (from
        its handshake to its session, or to the close of a refusal)."""
        self._open[address] = self._open.get(address, 0) + 1

    def release(self, address):
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def count(self, address):
        return self._open.get(address, 0)
