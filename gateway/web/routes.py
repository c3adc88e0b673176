"""Every route of the gateway, and the middlewares in their order, in one place."""

from __future__ import annotations

from aiohttp import web

from . import api, favicon, identity, login, middleware, pages, prompts, streams, terminal


def setup(app: web.Application) -> None:
    """Register the routes and the response headers on ``app``."""
    app.on_response_prepare.append(middleware.security_headers)
    app.router.add_get("/", pages.index)
    app.router.add_get("/login", pages.login_page)
    app.router.add_get("/agents/{agent_id}", pages.agent_redirect)
    app.router.add_get("/agents/{agent_id}/", pages.terminal_page)
    app.router.add_get("/static/dist/{name}", pages.bundle_file)
    for path in favicon.PATHS:
        app.router.add_get(path, favicon.favicon)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.prometheus)
    app.router.add_get("/api/me", api.me)
    app.router.add_get("/api/agents", api.list_agents)
    app.router.add_get("/api/agents/{agent_id}/screen", api.screen)
    app.router.add_post("/api/agents/{agent_id}/input", api.agent_input)
    app.router.add_post("/api/input", api.broadcast_input)
    app.router.add_get("/api/attention", prompts.attention)
    app.router.add_post("/api/agents/{agent_id}/prompt/{fingerprint}/answer", prompts.answer)
    app.router.add_get("/api/audit", api.audit_entries)
    app.router.add_post("/api/agents/{agent_id}/shares", api.create_share)
    app.router.add_get("/api/shares", api.list_shares)
    app.router.add_delete("/api/shares/{share_id}", api.revoke_share)
    app.router.add_get("/agents/{agent_id}/token", api.token)
    app.router.add_get("/agents/{agent_id}/ws", terminal.agent_ws)
    app.router.add_get("/api/events", streams.events)
    app.router.add_get("/api/agents/{agent_id}/logs", streams.agent_logs)
    app.router.add_post("/api/login", login.login)
    app.router.add_get("/api/login", login.login_options)
    app.router.add_post("/api/logout", login.logout)
    # GET only: a HEAD (a chat tool's link preview) must not use up a link.
    app.router.add_get("/s/{token}", login.spectate, allow_head=False)
    app.router.add_get("/login/{token}", login.one_time_login, allow_head=False)


MIDDLEWARES = (
    middleware.host_middleware,
    middleware.origin_middleware,
    identity.auth_middleware,
    middleware.error_middleware,
)
