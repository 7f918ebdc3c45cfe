"""What /metrics reports, read from the objects that count it: families of samples, bounded labels only (never a name)."""
import math
from typing import NamedTuple

from chat.websocket.connection import slow_consumer_closes

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


class Family(NamedTuple):
    """One metric. `samples`: (label values, number) for counters and gauges, (label values, chat.tally.Buckets) for
    histograms. `combine`: how several worker processes' gauges add up (prometheus_client's multiprocess modes:
    livesum, livemax, livemin; the processes that ended drop out)."""

    name: str
    kind: str
    help: str
    labels: tuple
    samples: list
    combine: str = "livesum"


class Sources(NamedTuple):
    """The objects read: the ChatService (its hub, delivery, writer and counts) and the uploads' state (or None)."""

    service: object
    uploads: object


def read(sources):
    """Every family, as the objects hold them now."""
    service = sources.service
    hub = service.hub
    delivery = service.delivery
    writer = delivery.writer
    counts = service.counts
    uploads = sources.uploads
    families = [
        Family("chat_connections", GAUGE, "Open chat websockets.", (), [((), hub.connection_count())]),
        Family("chat_connections_opened", COUNTER, "Chat websockets admitted since start.", (), [((), hub.opened)]),
        Family(
            "chat_users_online", GAUGE, "Names online in the whole chat, as the presence list shows them (bots included).",
            (), [((), delivery.online_page(None, 0)[2])], "livemax",
        ),
        Family(
            "chat_messages_accepted", COUNTER,
            "Messages (and room, edit, delete and reaction events) taken into the write buffer.", (), [((), writer.accepted)],
        ),
        Family(
            "chat_messages_refused", COUNTER,
            "Messages not accepted or not stored: buffer_full (the write buffer was full), database (the database refused it).",
            ("reason",), [(("buffer_full",), writer.overflowed), (("database",), writer.refused)],
        ),
        Family("chat_messages_stored", COUNTER, "Messages committed to the database.", (), [((), writer.stored)]),
        Family(
            "chat_messages_delivered", COUNTER, "Message frames handed to websockets (one per message per recipient socket).",
            (), [((), hub.delivered)],
        ),
        Family("chat_acks", COUNTER, "Acknowledgements sent to the posting socket (the message is committed).", (), [((), counts.acks)]),
        Family("chat_write_buffer_messages", GAUGE, "Messages accepted and not yet committed.", (), [((), len(writer))]),
        Family(
            "chat_commit_batch_size", HISTOGRAM, "Messages per database commit of the message writer.", (),
            [((), writer.batch_sizes)],
        ),
        Family(
            "chat_commit_seconds", HISTOGRAM, "Seconds each commit of the message writer took (retries while the database "
            "was away not included).", (), [((), writer.commit_seconds)],
        ),
        Family(
            "chat_rate_limited", COUNTER,
            "Requests refused by a rate limit: messages (rate_limit per socket), uploads (upload_rate per user).",
            ("limit",), [(("messages",), counts.rate_limited)] + ([(("uploads",), uploads.rate_limited)] if uploads else []),
        ),
        Family(
            "chat_slow_consumer_closes", COUNTER, "Websockets closed as too slow: queue (send_queue_messages or "
            "send_queue_bytes overflowed), budget (dropped as the most backed-up when send_queue_total_bytes was full).",
            ("cause",), [((cause,), n) for cause, n in sorted(slow_consumer_closes().items())],
        ),
        Family(
            "chat_handshake_refusals", COUNTER, "Websocket handshakes refused, by reason (see docs/operations.md).",
            ("reason",), [((reason,), n) for reason, n in sorted(counts.handshake_refusals.items())],
        ),
    ]
    if uploads is not None:
        families += [
            Family("chat_uploads", COUNTER, "Files stored by POST /files.", (), [((), uploads.stored)]),
            Family("chat_upload_bytes", COUNTER, "Bytes of the files stored by POST /files.", (), [((), uploads.stored_bytes)]),
        ]
    bus = getattr(delivery, "bus", None)  # only the cluster delivery (several processes over Redis) has one
    if bus is not None:
        gap = delivery.sequencer.gap()
        families += [
            Family("chat_bus_connected", GAUGE, "1 while this process is connected to the Redis bus.", (), [((), int(bus.connected))], "livemin"),
            Family("chat_bus_batches_received", COUNTER, "Bus batches received from the other processes.", (), [((), delivery.batches_received)]),
            Family(
                "chat_bus_messages_waiting", GAUGE, "Messages received and held back until the ones before them arrive (id order).",
                (), [((), len(delivery.sequencer))],
            ),
            Family(
                "chat_bus_lag_seconds", GAUGE, "How long delivery has waited for a missing message id (0: nothing missing); "
                "past bus_gap_wait it is read from the database.", (), [((), 0.0 if gap is None else max(0.0, gap[2]))], "livemax",
            ),
        ]
    return families


def cumulative_buckets(buckets):
    """[(le, count at or under it)] up to +Inf, as the exposition format wants them."""
    result = []
    total = 0
    for bound, count in zip(buckets.bounds + (math.inf,), buckets.counts):
        total += count
        result.append((bound, total))
    return result
