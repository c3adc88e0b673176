"""The terminal core: ttyd's wire codec, the upstream client, the hub.

Nothing here knows HTTP, Docker or auth. This file imports nothing, so that
``gateway.core.target`` or ``gateway.core.state`` can be read (by config,
say) without loading websockets or a screen backend.
"""
