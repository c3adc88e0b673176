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
* ``forwarding``: a follower sends input to the holder and waits for its answer.
* ``source``: a hub's :class:`~gateway.core.seams.Source` in replica mode,
  ttyd while this replica owns the agent, the stream while it mirrors it.
* ``node``: one replica: ownership, the stream reader and writer, drain.

The shared state (issue 13, item 3), each module the Redis side of a seam
of :mod:`gateway.seams`, with its keys and why in its docstring:

* ``lua``: a script run by its digest, reloaded after a Redis restart.
* ``sessions``: sessions (by the SHA-256 of their id; timeouts on Redis's
  clock) and one-time login links.
* ``throttle``: failed logins and locks, per name+address, fleet-wide.
* ``shares``: spectator links, redeemed in one script.
* ``connections``: the per-user cap, per-replica counts that lapse unless refreshed.
* ``audit``: the fleet's audit list beside each replica's file.
* ``control``: the stream by which a replica tells the others to close a
  session's sockets (and that its viewers changed).
* ``events``: the dashboard's feed, one stream, the same ids everywhere;
  who speaks for which agent.
* ``presence``: who watches, per replica parts that lapse unless refreshed.
"""
