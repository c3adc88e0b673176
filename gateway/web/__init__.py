"""The HTTP side: thin aiohttp handlers over the core and the policies.

Layers, lowest first; a module imports only from those above it in this list
(and from outside ``web``), never from a sibling on its own line or below:

* ``common``: JSON bodies and errors, agents as JSON, the audit of input;
  ``sse``, ``wsmask``, ``closing``: protocol helpers (SSE framing, the
  client-frame mask rule, a WebSocket closed by its handler whoever asks).
* ``identity``: who is calling (cookies, bearer tokens, sessions), the auth
  middleware, and the registry of open connections with their access checks.
* ``middleware`` (Host, Origin, errors, security headers) and ``accesslog``.
* the handler modules: ``api``, ``favicon``, ``login``, ``pages``, ``prompts``,
  ``streams``, ``terminal``. They never import each other; what two of them need moves
  down into ``common`` or ``identity``.

:func:`gateway.web.routes.setup` registers everything on an application.
This file imports nothing, so that a low module (``common``, ``sse``) can
be imported without pulling in every handler.
"""
