"""One agent's terminal state: its output emulated, and an exact repaint of it.

The hub feeds every byte an agent prints into a screen and, whenever a viewer
joins, sends the screen's snapshot: bytes that repaint any terminal to the
state the screen is in at its ``offset``, so the viewer follows the live
output from there. Two backends do this behind one interface:

* :mod:`.base`: what every backend shares, and nothing heavy (config imports
  it): the :class:`~.base.TerminalScreen` protocol the hub uses,
  ``check_size``, the OSC and title limits, the mode names the JSON view
  reports, and ``BACKENDS``, the names ``server.screen`` accepts.
* :mod:`.reference`: the pyte backend, :class:`~.reference.PyteScreen`, the
  reference the tests hold every backend to. It is built from
  :mod:`.cells` (the cell and SGR both ways), :mod:`.parser` (a bounded VT
  parser that never answers the agent), :mod:`.emulator` (pyte's grid with
  xterm.js's behaviour) and :mod:`.painter` (the snapshot).
* :mod:`.ghostty`: the native backend, :class:`~.ghostty.GhosttyScreen`,
  Ghostty's terminal core (libghostty-vt, via pyghostty), 30-90 times faster.

:func:`screen_backend` picks the class ``server.screen`` names and imports
its module only then: importing this package loads neither emulator.
"""

from __future__ import annotations

import functools
import logging

from ..errors import ConfigError
from .base import ScreenClass

__all__ = ["screen_backend"]

log = logging.getLogger(__name__)


@functools.cache
def screen_backend(name: str) -> ScreenClass:
    """The screen class ``server.screen`` names: ``auto`` is ghostty where it loads.

    Config checks only that the name is one of ``BACKENDS`` (it loads no
    emulator), so an explicit ``ghostty`` that cannot load is refused here,
    when the gateway starts, with a :class:`~gateway.errors.ConfigError`.
    """
    if name != "pyte":
        from . import ghostty

        if ghostty.UNAVAILABLE is None:
            # libghostty-vt's first formatter run in a process takes
            # 100-150 ms (measured): here, at start, not in a viewer's join.
            ghostty.GhosttyScreen(2, 1).snapshot()
            return ghostty.GhosttyScreen
        if name == "ghostty":
            raise ConfigError(f"server.screen = 'ghostty', but {ghostty.UNAVAILABLE}")
        log.warning("%s; emulating with pyte, the slower reference backend", ghostty.UNAVAILABLE)
    from .reference import PyteScreen

    return PyteScreen
