"""RFC 6455 on gevent, knowing nothing of chat: the sans-I/O frame codec, one connection's reader, writer, pinger
and close, and the gevent-websocket handler that lets a view refuse before the upgrade. Imports nothing from chat."""
