"""A WebSocket terminal gateway for fleets of AI coding agents behind ttyd."""

__version__ = "0.1.0"
