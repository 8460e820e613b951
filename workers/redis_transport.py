"""Kombu's Redis transport, repaired: a worker that loses Redis while it holds reserved messages lives on.

On a lost connection Celery's consumer collects the connection (it closes the channels, then drops the
transport's client) and then closes it once more.  A channel whose first close failed halfway (Redis is
down) tries again the second time to put its reserved, unacknowledged messages back, through a transport
that has no client any more: kombu raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``
(kombu#970, #582), which Celery takes for an unrecoverable error: the worker stops (measured here: a 3 s
outage while a rerank ran and a ping waited behind it).  This channel gives up putting them back instead, as
a crash would: they are still in Redis's unacked hash (kombu's ack emulation), and Redis hands them out
again after the visibility timeout; a rerank among them has expired by then and is dropped.

``celery_app.make_app`` selects this transport for ``redis://`` brokers (``broker_transport``); other schemes
(``rediss://``, ``sentinel://``) keep kombu's own, where the worker exits non-zero on that error instead.
"""

from __future__ import annotations

from kombu.transport import redis

__all__ = ["Channel", "Transport"]


class Channel(redis.Channel):
    """kombu's Redis channel; closing it after its transport lost its client is not an error."""

    def close(self) -> None:
        try:
            super().close()
        except AttributeError:
            if getattr(self.connection, "client", None) is not None:
                raise  # a transport still connected: a real bug, not the one above
            self.closed = True  # nothing left to close through


class Transport(redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel
