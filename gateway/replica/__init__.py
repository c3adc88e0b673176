"""Replica mode: several gateways made one by a Redis server (``[redis]``).

Without a ``[redis]`` table nothing here is imported, and neither is the
``redis`` package. With it, every replica keeps a hub per agent as usual,
but only one replica at a time (the agent's *owner*, by a fenced lease)
holds the agent's ttyd connection; it publishes what the hub relays into a
per-agent Redis stream, and every other replica feeds its hub from that
stream instead (a *mirror*), so any replica serves any viewer.

* ``codec``: keys, stream ids (= byte offsets), entries and checkpoints; pure.
* ``placement``: who should own what (rendezvous hashing); pure.
* ``client``: the connection to Redis, its version check and its health.
* ``scripts``: the Lua that makes leases and fenced appends atomic.
* ``source``: a hub's :class:`~gateway.core.seams.Source` in replica mode,
  ttyd while this replica owns the agent, the stream while it mirrors it.
* ``node``: one replica: ownership, the stream reader and writer, drain.
"""
