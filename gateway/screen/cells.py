"""Character cells, and SGR both ways: ``CSI ... m`` read into a pen, a pen written back.

A :class:`Cell` keeps colours as the SGR parameters that chose them, not as
RGB, so a repaint picks the very palette entry the agent did (pyte turns
256-colour indexes into RGB and drops dim, conceal and overline; these are
kept). :func:`apply_sgr` reads ``CSI params m``, :func:`sgr` writes the
sequence that sets a cell's attributes for a repaint, and :func:`tmux_codes`
writes them the way ``tmux capture-pane -e`` does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final, NamedTuple

__all__ = ["BLANK", "Cell", "apply_sgr", "parameter", "sgr", "tmux_codes"]

# The largest value a CSI parameter is read as (as xterm.js).
_MAX_PARAM: Final = 9999


class Cell(NamedTuple):
    """One character cell: its text and every attribute a repaint reproduces.

    The first nine fields are pyte's ``Char``. ``data`` is one printable
    character plus any zero-width ones after it; the right half of a wide
    character is a cell with empty ``data``. Colours are the SGR parameters
    that select them ("default", "31", "91", "38;5;174", "38;2;255;0;0"; "41",
    "48;5;..." for the background), so a repaint picks the very palette entry
    the agent chose.
    """

    data: str
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False
    conceal: bool = False
    overline: bool = False


BLANK: Final = Cell(" ")

_SGR_FLAGS: Final = {
    1: ("bold", True),
    2: ("dim", True),
    3: ("italics", True),
    4: ("underscore", True),
    5: ("blink", True),
    6: ("blink", True),
    7: ("reverse", True),
    8: ("conceal", True),
    9: ("strikethrough", True),
    21: ("underscore", True),  # double underline, drawn as an underline
    23: ("italics", False),
    24: ("underscore", False),
    25: ("blink", False),
    27: ("reverse", False),
    28: ("conceal", False),
    29: ("strikethrough", False),
    53: ("overline", True),
    55: ("overline", False),
}


def parameter(text: str) -> int:
    """A CSI parameter's value; empty is 0, and huge is :data:`_MAX_PARAM`."""
    return min(int(text or "0"), _MAX_PARAM)


def _extended_colour(values: list[str]) -> str | None:
    """``5;N`` or ``2;R;G;B`` (the part after 38/48) in canonical form, if valid."""
    if values and values[0] == "5" and len(values) >= 2:
        index = parameter(values[1])
        return f"5;{index}" if index <= 255 else None
    if values and values[0] == "2" and len(values) >= 4:
        rgb = [parameter(v) for v in values[1:4]]
        return "2;{};{};{}".format(*rgb) if max(rgb) <= 255 else None
    return None


@lru_cache(maxsize=1024)
def apply_sgr(pen: Cell, params: str) -> Cell:
    """The pen after ``CSI params m``; cached, as agents repeat the same few."""
    if params in ("", "0"):
        return BLANK
    attrs = pen._asdict()
    groups = params.split(";")
    i = 0
    while i < len(groups):
        parts = groups[i].split(":")
        code = parameter(parts[0])
        i += 1
        if code == 0:
            attrs = BLANK._asdict()
        elif code in _SGR_FLAGS:
            name, value = _SGR_FLAGS[code]
            # 4:0 is "no underline" in the sub-parameter form of underline styles.
            attrs[name] = value and not (code == 4 and parts[1:2] == ["0"])
        elif code == 22:
            attrs["bold"] = attrs["dim"] = False
        elif 30 <= code <= 37 or 90 <= code <= 97:
            attrs["fg"] = str(code)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            attrs["bg"] = str(code)
        elif code == 39:
            attrs["fg"] = "default"
        elif code == 49:
            attrs["bg"] = "default"
        elif code in (38, 48, 58):
            if len(parts) > 1:  # 38:5:N, 38:2:R:G:B or 38:2:CS:R:G:B
                values = parts[1:]
                if values[0] == "2" and len(values) >= 5:
                    values = ["2", *values[2:5]]
            else:  # 38;5;N or 38;2;R;G;B
                size = {"5": 2, "2": 4}.get(groups[i] if i < len(groups) else "", 1)
                values = groups[i : i + size]
                i += size
            colour = _extended_colour(values)
            if colour is not None and code != 58:  # 58: underline colour, not kept
                attrs["fg" if code == 38 else "bg"] = f"{code};{colour}"
    return Cell(**attrs)


@lru_cache(maxsize=1024)
def sgr(attrs: tuple[Any, ...]) -> str:
    """The SGR sequence that sets exactly these attributes (``Cell[1:]``)."""
    cell = Cell(" ", *attrs)
    codes = ["0"]
    for on, code in (
        (cell.bold, "1"),
        (cell.dim, "2"),
        (cell.italics, "3"),
        (cell.underscore, "4"),
        (cell.blink, "5"),
        (cell.reverse, "7"),
        (cell.conceal, "8"),
        (cell.strikethrough, "9"),
        (cell.overline, "53"),
    ):
        if on:
            codes.append(code)
    if cell.fg != "default":
        codes.append(cell.fg)
    if cell.bg != "default":
        codes.append(cell.bg)
    return "\x1b[" + ";".join(codes) + "m"


def line_sgr(row: tuple[Cell, ...]) -> str:
    """A row as text with SGR, trailing blanks cut, ending with the pen reset if it was set."""
    end = len(row)
    while end and row[end - 1] == BLANK:
        end -= 1
    out: list[str] = []
    attrs: tuple[Any, ...] = BLANK[1:]
    for cell in row[:end]:
        if cell.data:  # a wide character's right half comes with its left
            if cell[1:] != attrs:
                attrs = cell[1:]
                out.append(sgr(attrs))
            out.append(cell.data)
    if attrs != BLANK[1:]:
        out.append("\x1b[0m")
    return "".join(out)


# Escape sequences: CSI, OSC (ended or not), and any other ESC with the byte after it.
_ESCAPE: Final = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")


def plain(data: bytes) -> str:
    """Terminal output as text, its escape sequences removed (other controls stay)."""
    return _ESCAPE.sub(b"", data).decode("utf-8", "replace")


# The attributes `tmux capture-pane -e` writes, in its order.
_TMUX_FLAGS: Final = (
    ("bold", 1),
    ("dim", 2),
    ("italics", 3),
    ("underscore", 4),
    ("blink", 5),
    ("reverse", 7),
    ("conceal", 8),
    ("strikethrough", 9),
    ("overline", 53),
)


def tmux_codes(last: Cell, cell: Cell) -> str:
    """What ``tmux capture-pane -e`` writes between two cells (grid_string_cells_code)."""
    codes: list[int] = []
    last_flags = {name for name, _ in _TMUX_FLAGS if getattr(last, name)}
    flags = {name for name, _ in _TMUX_FLAGS if getattr(cell, name)}
    reset = bool(last_flags - flags)
    if reset:
        codes.append(0)
        last_flags = set()
    codes += [code for name, code in _TMUX_FLAGS if name in flags - last_flags]
    out = "\x1b[" + ";".join(map(str, codes)) + "m" if codes else ""
    if cell.fg != last.fg or reset:
        out += "\x1b[" + ("39" if cell.fg == "default" else cell.fg) + "m"
    if cell.bg != last.bg or reset:
        out += "\x1b[" + ("49" if cell.bg == "default" else cell.bg) + "m"
    return out
