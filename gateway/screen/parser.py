"""The VT parser of the reference screen: bounded, and it never answers.

pyte's ``Stream`` grows an unterminated OSC string or a run of CSI
parameters without bound, prints DCS and APC payloads as text, reads
``CSI > 4 ; 1 m`` as SGR, ignores charset designations in UTF-8 mode and
answers device queries. :class:`Parser` is a bounded VT500-style state
machine, the one xterm.js and tmux follow, that only calls
:class:`~.emulator.Emulator` methods: the screen has no way to answer the
agent. :meth:`Parser.pending` is the sequence it is in the middle of, which a
snapshot ends with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final, NamedTuple

from .base import MAX_OSC, MAX_TITLE
from .cells import apply_sgr, parameter
from .emulator import Emulator

__all__ = ["CSI", "ESCAPE", "GROUND", "OSC", "STRING", "Parser", "ParserState"]

# CSI parameters: characters kept, parameters used (as xterm.js); the largest
# value is cells.parameter's.
_MAX_PARAM_CHARS: Final = 256
_MAX_PARAMS: Final = 32

GROUND, ESCAPE, CSI, OSC, STRING = range(5)

_TEXT: Final = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
# A whole CSI sequence in one piece, the common case; anything else (split
# across feeds, controls inside, too long) goes through the state machine.
_WHOLE_CSI: Final = re.compile(r"(?:\x1b\[|\x9b)([<-?]?)([0-;]{0,256})([ -/]{0,2})([@-~])")
_OSC_END: Final = re.compile(r"[\x07\x18\x1a\x1b\x9c]")
_STRING_END: Final = re.compile(r"[\x18\x1a\x1b\x9c]")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@lru_cache(maxsize=512)
def _parse_params(params: str) -> tuple[int, ...]:
    if not params:
        return ()
    return tuple(parameter(p.partition(":")[0]) for p in params.split(";")[:_MAX_PARAMS])


def _first(params: tuple[int, ...]) -> int:
    return params[0] if params else 0


_Handler = Callable[[Emulator, tuple[int, ...]], None]

# CSI final bytes without prefix or intermediates. Device queries (c, n) and
# window operations (t) are left out on purpose: the screen never answers.
_CSI_HANDLERS: Final[dict[str, _Handler]] = {
    "@": lambda s, p: s.insert_characters(_first(p)),
    "A": lambda s, p: s.cursor_up(_first(p)),
    "B": lambda s, p: s.cursor_down(_first(p)),
    "C": lambda s, p: s.cursor_forward(_first(p)),
    "D": lambda s, p: s.cursor_back(_first(p)),
    "E": lambda s, p: s.cursor_down1(_first(p)),
    "F": lambda s, p: s.cursor_up1(_first(p)),
    "G": lambda s, p: s.cursor_to_column(_first(p)),
    "H": lambda s, p: s.cursor_position(*p[:2]),
    "I": lambda s, p: s.forward_tab(_first(p)),
    "J": lambda s, p: s.erase_in_display(_first(p)),
    "K": lambda s, p: s.erase_in_line(_first(p)),
    "L": lambda s, p: s.insert_lines(_first(p)),
    "M": lambda s, p: s.delete_lines(_first(p)),
    "P": lambda s, p: s.delete_characters(_first(p)),
    "S": lambda s, p: s.scroll_up(_first(p)),
    # With more parameters, T is xterm's mouse highlight tracking.
    "T": lambda s, p: s.scroll_down(_first(p)) if len(p) <= 1 else None,
    "X": lambda s, p: s.erase_characters(_first(p)),
    "Z": lambda s, p: s.back_tab(_first(p)),
    "`": lambda s, p: s.cursor_to_column(_first(p)),
    "a": lambda s, p: s.cursor_forward(_first(p)),
    "b": lambda s, p: s.repeat(_first(p)),
    "d": lambda s, p: s.cursor_to_line(_first(p)),
    "e": lambda s, p: s.cursor_down(_first(p)),
    "f": lambda s, p: s.cursor_position(*p[:2]),
    "g": lambda s, p: s.clear_tab_stop(_first(p)),
    "h": lambda s, p: s.set_ansi_modes(p, True),
    "l": lambda s, p: s.set_ansi_modes(p, False),
    "r": lambda s, p: s.set_margins(*p[:2]),
    "s": lambda s, p: s.save_cursor(),
    "u": lambda s, p: s.restore_cursor(),
}

_ESCAPE_HANDLERS: Final[dict[str, Callable[[Emulator], None]]] = {
    "7": lambda s: s.save_cursor(),
    "8": lambda s: s.restore_cursor(),
    "D": lambda s: s.index(),
    "E": lambda s: s.next_line(),
    "H": lambda s: s.set_tab_stop(),
    "M": lambda s: s.reverse_index(),
    "c": lambda s: s.reset(),
}

_C0_HANDLERS: Final[dict[str, Callable[[Emulator], None]]] = {
    "\x08": lambda s: s.backspace(),
    "\x09": lambda s: s.tab(),
    "\x0a": lambda s: s.linefeed(),
    "\x0b": lambda s: s.linefeed(),
    "\x0c": lambda s: s.linefeed(),
    "\x0d": lambda s: s.carriage_return(),
}

_C1_HANDLERS: Final[dict[str, Callable[[Emulator], None]]] = {
    "\x84": lambda s: s.index(),
    "\x85": lambda s: s.next_line(),
    "\x88": lambda s: s.set_tab_stop(),
    "\x8d": lambda s: s.reverse_index(),
}


class ParserState(NamedTuple):
    """Where the parser is inside a control sequence, in repaintable form."""

    state: int
    intermediates: str
    prefix: str
    params: str
    invalid: bool
    osc: str


class Parser:
    """A VT500-style parser (ECMA-48 with xterm's and xterm.js's choices) for :class:`Emulator`.

    Memory is bounded: OSC strings are cut at :data:`MAX_OSC`, CSI parameters
    at 256 characters, and DCS, SOS, PM and APC strings are skipped unread.
    """

    def __init__(self, screen: Emulator) -> None:
        self._screen = screen
        self.reset()

    def reset(self) -> None:
        """Back to the ground state, dropping any sequence in progress."""
        self._state = GROUND
        self._intermediates = ""
        self._prefix = ""
        self._params = ""
        self._invalid = False
        self._osc: list[str] = []
        self._osc_size = 0

    def pending(self) -> ParserState:
        """The sequence in progress (only what affects its outcome)."""
        if self._state == GROUND:
            return ParserState(GROUND, "", "", "", False, "")
        if self._invalid:  # the sequence will be ignored whatever it holds
            return ParserState(self._state, "", "", "", True, "")
        return ParserState(
            self._state,
            self._intermediates,
            self._prefix,
            self._params,
            False,
            "".join(self._osc),
        )

    def feed(self, text: str) -> None:
        """Parse decoded output, calling the screen for everything it means."""
        screen = self._screen
        position, end = 0, len(text)
        while position < end:
            state = self._state
            if state == GROUND:
                match = _TEXT.match(text, position)
                if match:
                    screen.draw(match.group())
                    position = match.end()
                    continue
                char = text[position]
                if char in "\x1b\x9b":
                    match = _WHOLE_CSI.match(text, position)
                    if match:
                        self._dispatch_csi(*match.groups())
                        position = match.end()
                        continue
                self._control(char)
                position += 1
            elif state in (OSC, STRING):
                match = (_OSC_END if state == OSC else _STRING_END).search(text, position)
                stop = match.start() if match else end
                if state == OSC and self._osc_size < MAX_OSC:
                    piece = text[position : min(stop, position + MAX_OSC - self._osc_size)]
                    self._osc.append(piece)
                    self._osc_size += len(piece)
                if match is None:
                    return
                self._end_string(text[stop])
                position = stop + 1
            elif self._step(text[position]):
                position += 1

    def _control(self, char: str) -> None:
        """A control character in the ground state."""
        if char == "\x1b":
            self._enter(ESCAPE)
        elif char == "\x9b":
            self._enter(CSI)
        elif char == "\x9d":
            self._enter(OSC)
        elif char in "\x90\x98\x9e\x9f":  # DCS, SOS, PM, APC
            self._enter(STRING)
        elif char in _C1_HANDLERS:
            self._screen.last_char = ""
            _C1_HANDLERS[char](self._screen)
        else:
            self._execute(char)

    def _execute(self, char: str) -> None:
        """A C0 control, in the ground state or inside a sequence (as xterm does)."""
        screen = self._screen
        screen.last_char = ""
        if char in _C0_HANDLERS:
            _C0_HANDLERS[char](screen)
        elif char in "\x0e\x0f":  # SO, SI: invoke G1 or G0
            screen.shift = int(char == "\x0e")

    def _enter(self, state: int) -> None:
        self._state = state
        self._intermediates = self._prefix = self._params = ""
        self._invalid = False
        self._osc = []
        self._osc_size = 0

    def _step(self, char: str) -> bool:
        """One character inside an escape or CSI sequence; False to reread it in ground."""
        code = ord(char)
        if code >= 0x80:  # C1 controls and text abort the sequence
            self._state = GROUND
            return False
        if char == "\x1b":
            self._enter(ESCAPE)
        elif char in "\x18\x1a":  # CAN, SUB
            self._state = GROUND
        elif code < 0x20:
            self._execute(char)
        elif code == 0x7F:
            pass
        elif self._state == ESCAPE:
            self._escape_char(char)
        else:
            self._csi_char(char)
        return True

    def _escape_char(self, char: str) -> None:
        if char <= "/":
            self._collect(char)
        elif not self._intermediates and char == "[":
            self._enter(CSI)
        elif not self._intermediates and char == "]":
            self._enter(OSC)
        elif not self._intermediates and char in "PX^_":
            self._enter(STRING)
        else:
            self._state = GROUND
            if not self._invalid:
                self._dispatch_escape(self._intermediates, char)

    def _csi_char(self, char: str) -> None:
        if "0" <= char <= ";":
            if self._intermediates:
                self._invalid = True
            elif len(self._params) < _MAX_PARAM_CHARS:
                self._params += char
        elif "<" <= char <= "?":
            if self._params or self._prefix or self._intermediates:
                self._invalid = True
            else:
                self._prefix = char
        elif char <= "/":
            self._collect(char)
        else:
            self._state = GROUND
            if not self._invalid:
                self._dispatch_csi(self._prefix, self._params, self._intermediates, char)

    def _collect(self, char: str) -> None:
        if len(self._intermediates) < 2:
            self._intermediates += char
        else:
            self._invalid = True

    def _end_string(self, char: str) -> None:
        """An OSC, DCS, SOS, PM or APC string ends with ``char``."""
        if self._state == OSC and char not in "\x18\x1a":
            self._dispatch_osc("".join(self._osc))
        if char == "\x1b":  # ESC ends the string and starts a sequence (ESC \ is ST)
            self._enter(ESCAPE)
        else:
            self._enter(GROUND)

    def _dispatch_escape(self, intermediates: str, final: str) -> None:
        screen = self._screen
        screen.last_char = ""
        if not intermediates:
            if final in _ESCAPE_HANDLERS:
                _ESCAPE_HANDLERS[final](screen)
            elif final in "=>":
                screen.keypad_application = final == "="
        elif intermediates in ("(", ")"):
            screen.define_charset(final, intermediates)
        elif intermediates == "#" and final == "8":
            screen.alignment_display()

    def _dispatch_csi(self, prefix: str, params: str, intermediates: str, final: str) -> None:
        screen = self._screen
        if not prefix and not intermediates:
            if final == "m":
                screen.cursor.attrs = apply_sgr(screen.cursor.attrs, params)
            elif final in _CSI_HANDLERS:
                _CSI_HANDLERS[final](screen, _parse_params(params))
        elif prefix == "?" and not intermediates:
            if final in "hl":
                for number in _parse_params(params):
                    screen.set_private_mode(number, final == "h")
            elif final == "J":  # DECSED: no protected cells here, so plain ED
                screen.erase_in_display(_first(_parse_params(params)))
            elif final == "K":
                screen.erase_in_line(_first(_parse_params(params)))
        elif not prefix and intermediates == " " and final == "q":
            style = _first(_parse_params(params))
            if style <= 6:
                screen.cursor_style = style
        elif not prefix and intermediates == "!" and final == "p":
            screen.soft_reset()
        screen.last_char = ""

    def _dispatch_osc(self, payload: str) -> None:
        code, _, text = payload.partition(";")
        if code in ("0", "1", "2"):
            text = _UNPRINTABLE.sub("", text)[:MAX_TITLE]
            if code != "2":
                self._screen.icon_name = text
            if code != "1":
                self._screen.title = text
