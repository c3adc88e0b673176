"""The front-end bundle: a fixed set of built files, read once and served from memory.

``GET /static/dist/{name}`` is public (the login page needs its script), so
it must never become a way to read files: ``name`` arrives percent-decoded
(``%2F`` is a slash, ``%2e%2e`` is ``..``), and a path built from it can
reach anything the gateway can read — its config, the share state, the
audit log, ``/proc/self/fd/1``. So no path is ever built from a request:
the names below are the only ones esbuild writes (``static/package.json``),
each is read at start without following symlinks, and a request either
names one of them exactly or gets 404. The content type comes from this
table, never from the file, so nothing here can be served as HTML.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# esbuild's entry points (static/package.json "build") and what it writes for each.
PAGES = ("terminal", "login", "wall")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
}
FILES = frozenset(
    f"{page}{ext}{suffix}" for page in PAGES for ext in (".js", ".css") for suffix in ("", ".map")
)
# The largest built file is a few hundred KiB; anything far larger is not ours.
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Asset:
    """One built file, as it is answered."""

    body: bytes = field(repr=False)
    content_type: str
    etag: str


class Bundle:
    """The built files by name; :meth:`get` is an exact lookup, nothing else."""

    def __init__(self, assets: Mapping[str, Asset]) -> None:
        self._assets = dict(assets)

    @classmethod
    def load(cls, folder: Path) -> Bundle:
        """Read every known file of ``folder`` (blocking: call it in a worker thread).

        A symlink, a non-regular file or an oversized one is left out with a
        warning: the bundle is what the build wrote, not what someone linked.
        """
        assets: dict[str, Asset] = {}
        missing = []
        for name in sorted(FILES):
            try:
                body = _read_plain_file(folder / name)
            except FileNotFoundError:
                missing.append(name)
                continue
            except OSError as exc:
                log.warning("front-end bundle: %s left out: %s", name, exc.strerror or exc)
                continue
            digest = hashlib.sha256(body).hexdigest()[:32]
            content_type = CONTENT_TYPES[os.path.splitext(name)[1]]
            assets[name] = Asset(body, content_type, f'"{digest}"')
        if not any(name.endswith(".js") for name in assets):
            log.warning("the front-end bundle is missing in %s: run `make setup`", folder)
        elif missing:
            log.info("front-end bundle: not built: %s", ", ".join(missing))
        return cls(assets)

    def get(self, name: str) -> Asset | None:
        return self._assets.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._assets)


def _read_plain_file(path: Path) -> bytes:
    # O_NOFOLLOW refuses a symlink in the last component; the folder itself
    # is the project's own static/dist. fstat on the open descriptor, so the
    # check and the read are of the same file.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES} bytes")
        return file.read(MAX_FILE_BYTES + 1)
