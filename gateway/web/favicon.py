"""The pages' icon: a small SVG drawn here, so no browser tab asks for a file that is not there.

Browsers ask for ``/favicon.ico`` on their own (and for every page that
names no icon, such as an error answer), so that name answers the same SVG
as ``/favicon.svg``, the one the pages link. Both are public: the login
page shows it too.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

# A prompt ("> _") on the pages' dark bar colour.
ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    b'<rect width="32" height="32" rx="6" fill="#161c22"/>'
    b'<path d="M8 10l6 6-6 6" fill="none" stroke="#4caf50" stroke-width="3"'
    b' stroke-linecap="round" stroke-linejoin="round"/>'
    b'<path d="M17 22h8" stroke="#e6e6e6" stroke-width="3" stroke-linecap="round"/>'
    b"</svg>"
)
ETAG = f'"{hashlib.sha256(ICON).hexdigest()[:16]}"'
PATHS = ("/favicon.ico", "/favicon.svg")


async def favicon(request: web.Request) -> web.Response:
    """The icon, cached for a day (it changes only with the gateway)."""
    headers = {"ETag": ETAG, "Cache-Control": "public, max-age=86400"}
    if ETAG in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=ICON, content_type="image/svg+xml", headers=headers)
