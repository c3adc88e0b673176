"""A WebSocket terminal gateway for fleets of AI coding agents behind ttyd.

The layout is the architecture. Lowest first:

* ``errors``: the one exception tree.
* pure policy and values, sans I/O: ``users``, ``limits``, ``origins``,
  ``proxies``, ``ring``, ``readiness``, ``core.target``, ``core.state``, ``core.backoff``,
  ``core.ttyd`` (the wire codec), ``screen.base``, ``awareness.profile``
  and ``awareness.classify`` (what an agent is doing, from its screen); and
  ``config``, which reads settings into them.
* ``tasks`` (asyncio helpers), ``logsafe``, ``seams`` (what replicas will
  share), and the stateful policies: ``auth``, ``shares``, ``audit``, ``events``.
* ``screen`` (the emulators) and ``core`` (the upstream, the sans-I/O relay
  and backlog, and their asyncio hub, viewers and fleet).
* the adapters: ``docker`` (discovery and container logs), ``replica``
  (several gateways made one by Redis: ownership, streams), ``local``
  (tmux + ttyd for the demo and the tests, and its fake agent
  ``demo_agent``), ``bundle`` (the built front end, read at start),
  ``awareness.watch`` (when each agent's screen is looked at) and
  ``metrics``.
* ``appkeys``: the application's typed state.
* ``web`` (the aiohttp handlers, in layers of their own: see its ``__init__``).
* ``app`` (wiring and lifecycles) and ``cli``.

Rules, checked by ``tests/test_layout.py``:

1. Nothing imports upward in this list, and there is no import cycle.
2. ``config`` imports only errors and pure modules: importing it loads no
   asyncio, aiohttp, websockets, docker, pyte or cffi.
3. ``core`` and ``screen`` know no HTTP, Docker or auth.
4. Handler modules (``web.api``, ``web.login``, ``web.pages``,
   ``web.prompts``, ``web.streams``, ``web.terminal``) never import each other; what two of
   them need lives in ``web.common`` or ``web.identity``.
5. No module is over 700 lines.
6. A package's ``__init__`` imports nothing heavy, so a low module of it
   can be imported alone.
"""

__version__ = "0.1.0"
