"""One agent's terminal state: its output emulated, and an exact repaint of it.

The hub feeds every byte an agent prints into a screen and, whenever a viewer
joins, sends the screen's snapshot: bytes that repaint any terminal to the
state the screen is in at its ``offset``, so the viewer follows the live
output from there. Two backends do this behind one interface:

* :mod:`.base`: what every backend shares, and nothing heavy (config imports
  it): the :class:`~.base.TerminalScreen` protocol the hub uses,
  ``check_size``, the OSC and title limits, the mode names the JSON view
  reports, and ``BACKENDS``, the names ``server.screen`` accepts.
* :mod:`.reference`: the pyte backend, :class:`~.reference.Screen`, the
  reference the tests hold every backend to. It is built from
  :mod:`.cells` (the cell and SGR both ways), :mod:`.parser` (a bounded VT
  parser that never answers the agent), :mod:`.emulator` (pyte's grid with
  xterm.js's behaviour) and :mod:`.painter` (the snapshot).
* :mod:`.ghostty`: the native backend, :class:`~.ghostty.GhosttyScreen`,
  Ghostty's terminal core (libghostty-vt, via pyghostty), 30-90 times faster.

Importing this package loads neither emulator.
"""
