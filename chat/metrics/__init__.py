"""GET /metrics in the Prometheus text format: the counts each object keeps in plain ints (chat/tally.py, the hub, the
writer, ...), read at scrape time; with several worker processes, each publishes its own to a shared directory and the
scrape sums them.

May import chat.messaging, chat.websocket and the shared modules; never chat.cluster (it reads the cluster delivery
through the attributes it has), and nothing imports it but chat.app.
"""
