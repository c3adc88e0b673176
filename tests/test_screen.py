"""The emulated screen: exact repaints, fidelity to tmux, and hostile output."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.screen.base import MAX_OSC, MAX_TITLE
from gateway.screen.cells import Cell
from gateway.screen.emulator import Emulator
from gateway.screen.parser import Parser
from gateway.screen.reference import PyteScreen

# Recorded from the real CLIs (how: tests/fixtures/agent-tui/README.md); kept here so
# that a clone alone passes the tests.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "agent-tui"
AGENTS = ("claude", "codex", "gemini", "gemini-flow")

SGR = re.compile(r"\x1b\[[0-9;:]*m")


def replay(snapshot_of: PyteScreen, onto: PyteScreen | None = None) -> PyteScreen:
    """A screen of the same size that saw only ``snapshot_of``'s snapshot."""
    screen = onto or PyteScreen(snapshot_of.columns, snapshot_of.rows)
    screen.feed(snapshot_of.snapshot())
    return screen


def assert_round_trip(screen: PyteScreen) -> PyteScreen:
    copy = replay(screen)
    assert copy.state() == screen.state()
    return copy


def fed(data: bytes | str, columns: int = 10, rows: int = 4) -> PyteScreen:
    screen = PyteScreen(columns, rows)
    screen.feed(data.encode() if isinstance(data, str) else data)
    return screen


def cell(screen: PyteScreen, x: int, y: int) -> Cell:
    return screen.state().lines[y][x]


# --- the grammar of realistic output ------------------------------------------------


def csi(*params: object, final: str, prefix: str = "") -> bytes:
    return f"\x1b[{prefix}{';'.join(map(str, params))}{final}".encode()


small = st.integers(0, 14)
SGR_PARAMS = st.one_of(
    st.sampled_from(
        [0, 1, 2, 3, 4, 5, 7, 8, 9, 21, 22, 23, 24, 25, 27, 28, 29, 39, 49, 53, 55, "4:0", "4:3"]
    ),
    st.integers(30, 37),
    st.integers(40, 47),
    st.integers(90, 97),
    st.integers(100, 107),
    st.builds("{};5;{}".format, st.sampled_from([38, 48, 58]), st.integers(0, 300)),
    st.builds(
        "{};2;{};{};{}".format,
        st.sampled_from([38, 48]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 256),
    ),
    st.builds("38:2::{}:{}:{}".format, st.integers(0, 255), st.integers(0, 9), small),
    st.builds("48:5:{}".format, st.integers(0, 255)),
)
MODES = [1, 3, 5, 6, 7, 9, 12, 25, 47, 1000, 1002, 1003, 1004, 1005, 1006, 1015, 1047, 1048]
MODES += [1049, 2004, 2026, 7727]

# Output as programs write it: every sequence whole and in its documented form.
WELL_FORMED_PIECES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12).map(
        str.encode
    ),
    st.sampled_from(["中", "文字", "😀", "👍🏽", "é", "e\u0301", "\u200d", "\ufe0f", "ｱ", "█"]).map(
        str.encode
    ),
    st.sampled_from(
        [b"\r", b"\n", b"\r\n", b"\b", b"\t", b"\x0b", b"\x0c", b"\x0e", b"\x0f", b"\x07", b"\0"]
    ),
    st.lists(SGR_PARAMS, max_size=4).map(lambda p: csi(*p, final="m")),
    st.builds(
        lambda final, n: csi(n, final=final) if n >= 0 else csi(final=final),
        st.sampled_from("@ABCDEFGIJKLMPSTXZ`abdeg"),
        st.integers(-1, 20),
    ),
    st.builds(lambda row, col: csi(row, col, final="H"), small, st.integers(0, 20)),
    st.builds(lambda top, bottom: csi(top, bottom, final="r"), st.integers(0, 9), small),
    st.sampled_from([b"\x1b[r", b"\x1b[s", b"\x1b[u", b"\x1b[!p", b"\x1b[4h", b"\x1b[4l"]),
    st.sampled_from([b"\x1b[20h", b"\x1b[20l", b"\x1b[?J", b"\x1b[?2K", b"\x1b[3g"]),
    st.sampled_from([b"\x1b7", b"\x1b8", b"\x1bD", b"\x1bE", b"\x1bM", b"\x1bH", b"\x1bc"]),
    st.sampled_from([b"\x1b#8", b"\x1b=", b"\x1b>", b"\x1b(0", b"\x1b(B", b"\x1b)0", b"\x1b)B"]),
    st.builds(
        lambda mode, on: csi(mode, final="h" if on else "l", prefix="?"),
        st.sampled_from(MODES),
        st.booleans(),
    ),
    st.builds(lambda style: csi(style, final=" q"), st.integers(0, 7)),
    st.builds(
        lambda code, title, end: f"\x1b]{code};{title}{end}".encode(),
        st.sampled_from(["0", "1", "2", "10"]),
        st.text(max_size=8),
        st.sampled_from(["\x07", "\x1b\\", "\x9c"]),
    ),
    st.sampled_from(
        [b"\x1bPq#0;1\x1b\\", b"\x1b_app\x07x\x1b\\", b"\xc2\x9b2J", b"\xc2\x85", b"\xc2\x8d"]
    ),
    st.sampled_from([b"\x1b[>4;1m", b"\x1b[?u", b"\x1b[6n", b"\x1b[c", b"\x1b[2;5;1T"]),
    # States that take several steps to reach.
    st.sampled_from(
        [
            b"\x1b[2;3r\x1b[?6h\x1b7\x1b[?6l",
            b"\x1b[31m\x1b(0\x0e\x1b7\x1b(B\x0f\x1b[m",
            b"\x1b[?1049h\x1b[1;2r\x1b7",
            b"\x1b[999C\x1b7x",
        ]
    ),
)
PIECES = st.one_of(WELL_FORMED_PIECES, st.binary(max_size=6))
STREAMS = st.lists(PIECES, max_size=50).map(b"".join)
SIZES = st.tuples(st.integers(1, 12), st.integers(1, 8))
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_in_pieces(screen: PyteScreen, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        screen.feed(data[start:cut])
        start = cut


# --- the repaint ------------------------------------------------------------------


@FAST
@given(
    size=SIZES,
    program=st.lists(st.one_of(STREAMS, SIZES), max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    stop=st.integers(0, 10_000),
)
def test_snapshot_reproduces_the_state(
    size: tuple[int, int], program: list[bytes | tuple[int, int]], cuts: list[int], stop: int
) -> None:
    screen = PyteScreen(*size)
    for step in program:
        if isinstance(step, tuple):
            screen.resize(*step)
        else:
            feed_in_pieces(screen, step, cuts)
    # Snapshots are taken anywhere, in the middle of sequences too.
    tail = program[-1] if program and isinstance(program[-1], bytes) else b""
    feed_in_pieces(screen, tail[: stop % (len(tail) + 1)], cuts)
    copy = assert_round_trip(screen)
    # The snapshot is a function of the state.
    assert copy.snapshot() == screen.snapshot()


@FAST
@given(size=SIZES, data=STREAMS, garbage=STREAMS, suffix=STREAMS)
def test_snapshot_repairs_any_terminal_and_the_output_continues(
    size: tuple[int, int], data: bytes, garbage: bytes, suffix: bytes
) -> None:
    screen = PyteScreen(*size)
    screen.feed(data)
    dirty = PyteScreen(*size)
    dirty.feed(garbage + b"\x1b[?1049h\x1b[2;3r\x1b[?6h\x1b[4h\x1b(0\x0e\x1b=\x1b]2;old\x07")
    dirty.feed(garbage)
    copy = replay(screen, onto=dirty)
    assert copy.state() == screen.state()
    # REP right after the snapshot point is the one thing a repaint cannot carry
    # (what it repeats is the last character printed, not a cell).
    suffix = b"\x1b[m" + suffix
    screen.feed(suffix)
    copy.feed(suffix)
    assert copy.state() == screen.state()


@settings(max_examples=100, deadline=None)
@given(size=SIZES, data=STREAMS, cuts=st.lists(st.integers(0, 10_000), min_size=1, max_size=8))
def test_how_output_is_split_does_not_matter(
    size: tuple[int, int], data: bytes, cuts: list[int]
) -> None:
    whole = PyteScreen(*size)
    whole.feed(data)
    pieces = PyteScreen(*size)
    feed_in_pieces(pieces, data, cuts)
    assert pieces.state() == whole.state()


# What a run of text can meet: wide characters to split, autowrap off, the
# pending wrap, positions anywhere.
SETUPS = st.lists(
    st.sampled_from(
        ["中文字", "ab中", "\x1b[?7l", "\x1b[?7h", "\x1b[H", "\x1b[1;2H", "\x1b[2;4H", "\r\n"]
    ),
    max_size=8,
).map(lambda pieces: "".join(pieces).encode())


@settings(max_examples=150, deadline=None)
@given(
    size=SIZES,
    before=SETUPS,
    text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40),
)
def test_ascii_is_printed_like_any_text(size: tuple[int, int], before: bytes, text: str) -> None:
    # Runs of ASCII take a faster path; a combining mark (which changes no
    # other cell) sends the same run down the general one.
    fast = PyteScreen(*size)
    fast.feed(before)
    fast.feed(text.encode())
    fast.feed("\u0301".encode())
    general = PyteScreen(*size)
    general.feed(before)
    general.feed((text + "\u0301").encode())
    assert fast.state() == general.state()
    # Both remember the same character to repeat.
    fast.feed(b"\x1b[2b")
    general.feed(b"\x1b[2b")
    assert fast.state() == general.state()


MIDDLES = [
    b"ab\x1b[1;3",  # inside CSI parameters
    b"ab\x1b[?25",  # inside a private mode
    b"ab\x1b[2 ",  # after an intermediate
    b"ab\x1b(",  # inside a charset designation
    b"ab\x1b",  # right after ESC
    b"ab\x1b]2;half a ti",  # inside a title
    b"ab\x1bPq#0;1",  # inside a DCS string
    b"ab\xe4\xb8",  # inside a UTF-8 character
    b"ab\x1b[1;2;3??",  # inside a sequence that will be ignored
]


@pytest.mark.parametrize("prefix", MIDDLES)
def test_snapshot_in_the_middle_of_a_sequence(prefix: bytes) -> None:
    # The hub sends a snapshot at offset M followed by the raw bytes from M on.
    screen = fed(prefix)
    copy = assert_round_trip(screen)
    rest = b"1mX\x1b\\q\x07\xadY"
    screen.feed(rest)
    copy.feed(rest)
    assert copy.state() == screen.state()
    assert copy.text() == screen.text()


STREAMS_TO_SPLIT = [
    "\x1b[?1049h\x1b[1;40r\x1b[38;5;174m中文\x1b[0m😀e\u0301\x1b]2;title\x07\x1b[?25l\x1b[3;5H",
    "\x1b[2;3r\x1b[?6h\x1b7\x1b(0lqqk\x0e\x1b[4h\x1b[48;2;1;2;3mxy\x1b[K\x1bPq\x1b\\\x1b[5b",
]


@pytest.mark.parametrize("text", STREAMS_TO_SPLIT)
def test_every_split_point(text: str) -> None:
    data = text.encode()
    whole = fed(data, 12, 6)
    for cut in range(len(data) + 1):
        screen = PyteScreen(12, 6)
        screen.feed(data[:cut])
        assert_round_trip(screen)
        screen.feed(data[cut:])
        assert screen.state() == whole.state(), cut


# --- real agents ------------------------------------------------------------------


def parse_capture(ansi: str, columns: int, rows: int) -> PyteScreen:
    """A screen painted row by row from `tmux capture-pane -p -e` output."""
    screen = PyteScreen(columns, rows)
    for y, line in enumerate(ansi.split("\n")[:rows]):
        screen.feed(f"\x1b[{y + 1};1H{line}".encode())
    return screen


def palette(colour: str) -> str:
    """tmux keeps 38;5;N for colours the agent picked that way, and sends 3N for N < 8."""
    match = re.fullmatch(r"([34])8;5;(\d+)", colour)
    if match and int(match[2]) < 16:
        base, index = match[1], int(match[2])
        return f"{base}{index}" if index < 8 else f"{int(base) + 6}{index - 8}"
    return colour


def assert_same_cells(screen: PyteScreen, capture: str) -> None:
    """Every cell tmux captured, compared character and attributes."""
    expected = parse_capture(capture, screen.columns, screen.rows).state().lines
    for y, (row, want_row) in enumerate(zip(screen.state().lines, expected, strict=True)):
        # tmux cuts trailing spaces: their attributes are not in the capture.
        width = len("".join(c.data for c in want_row).rstrip(" "))
        for x in range(width):
            got, want = row[x], want_row[x]
            got = got._replace(fg=palette(got.fg), bg=palette(got.bg))
            want = want._replace(fg=palette(want.fg), bg=palette(want.bg))
            assert got == want, (y, x)


def test_fixtures_are_there() -> None:
    # Fail, do not skip: they ship with the repository's shared folder.
    assert FIXTURES.is_dir(), FIXTURES
    for name in AGENTS:
        assert (FIXTURES / f"{name}.bin").is_file()


@pytest.mark.parametrize("name", AGENTS)
def test_real_agent_matches_tmux(name: str) -> None:
    screen = PyteScreen(120, 40)
    screen.feed((FIXTURES / f"{name}.bin").read_bytes())
    capture = (FIXTURES / f"{name}.screen.ansi").read_text()

    assert screen.text() == SGR.sub("", capture)
    assert_same_cells(screen, capture)
    # Our own capture paints the same cells as tmux's.
    assert_same_cells(parse_capture(screen.ansi(), 120, 40), capture)
    assert_round_trip(screen)


def test_real_agent_state() -> None:
    screen = PyteScreen(120, 40)
    screen.feed((FIXTURES / "gemini-flow.bin").read_bytes())
    info = screen.to_json()
    # tmux runs its clients on the alternate screen with keypad and cursor keys on.
    assert info["alternate_screen"] is True
    assert info["modes"]["application_cursor_keys"] is True
    assert info["modes"]["application_keypad"] is True
    assert len(info["lines"]) == 40


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_text_matches_a_real_tmux(tmp_path: Path) -> None:
    output = "wide 中文字 at the end:中\r\n\x1b[31mred\x1b[m e\u0301 😀|\r\n\ttab\x1b[5Gx\r\n"
    script = tmp_path / "out"
    script.write_bytes(output.encode())
    socket = tmp_path / "tmux.sock"
    tmux = ["tmux", "-f", "/dev/null", "-S", str(socket)]
    # The status line goes before the pane exists, so the pane is never resized.
    setup = ["start-server", ";", "set", "-g", "status", "off", ";"]
    command = ["new-session", "-d", "-x", "20", "-y", "6", f"cat {script}; sleep 30"]
    subprocess.run([*tmux, *setup, *command], check=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            captured = subprocess.run(
                [*tmux, "capture-pane", "-p"], check=True, capture_output=True, text=True
            ).stdout
            if "tab" in captured or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    screen = PyteScreen(20, 6)
    screen.feed(output.encode())
    assert screen.text() == captured


# --- fidelity, one feature at a time ------------------------------------------------


def test_text_is_like_capture_pane() -> None:
    screen = fed("ab  \x1b[41m  \x1b[m\r\n\r\nx中y", 8, 4)
    assert screen.text() == "ab\n\nx中y\n\n"
    assert screen.to_json()["lines"] == ["ab", "", "x中y", ""]


def test_colours_keep_the_form_the_agent_chose() -> None:
    screen = fed("\x1b[31;42ma\x1b[91;105mb\x1b[38;5;174;48;5;1mc\x1b[38:2::1:2:3md")
    assert [(c.fg, c.bg) for c in screen.state().lines[0][:4]] == [
        ("31", "42"),
        ("91", "105"),
        ("38;5;174", "48;5;1"),
        ("38;2;1;2;3", "48;5;1"),
    ]
    assert b"38;5;174;48;5;1m" in screen.snapshot()
    assert_round_trip(screen)


def test_attributes() -> None:
    screen = fed("\x1b[1;2;3;4;5;7;8;9;53mA\x1b[22;23;24;25;27;28;29;55mB\x1b[4:0mC")
    a, b, c = screen.state().lines[0][:3]
    assert a == Cell("A", "default", "default", *[True] * 9)
    assert b == Cell("B")
    assert not c.underscore
    assert_round_trip(screen)


def test_other_private_sequences_are_not_sgr() -> None:
    # tmux sends XTMODKEYS; pyte would read it as bold and underline.
    screen = fed("\x1b[>4;1mA")
    assert cell(screen, 0, 0) == Cell("A")


def test_wide_characters() -> None:
    screen = fed("中文", 5, 2)
    row = screen.state().lines[0]
    assert [c.data for c in row] == ["中", "", "文", "", " "]
    snapshot = screen.snapshot().decode()
    assert "中文" in snapshot
    assert "中\x1b" not in snapshot
    assert_round_trip(screen)


def test_wide_character_at_the_last_column_wraps() -> None:
    screen = fed("abcd中", 5, 2)
    assert screen.text() == "abcd\n中\n"
    assert screen.state().cursor == (2, 1)
    assert_round_trip(screen)
    no_wrap = fed("\x1b[?7labcd中", 5, 2)
    assert no_wrap.text() == "abcd\n\n"  # as xterm.js: it cannot fit, so it is dropped
    assert_round_trip(no_wrap)


def test_overwriting_half_a_wide_character_blanks_the_other_half() -> None:
    screen = fed("中文\x1b[1;2Hx\x1b[1;3Hy", 6, 1)
    assert [c.data for c in screen.state().lines[0][:4]] == [" ", "x", "y", " "]
    assert_round_trip(screen)


def test_zero_width_characters_join_the_cell_before() -> None:
    # pyte drops the rest of the run after a variation selector or a joiner.
    screen = fed("⚠\ufe0f ok 👍\u200d🔥 e\u0301!", 20, 1)
    assert screen.text() == "⚠\ufe0f ok 👍\u200d🔥 e\u0301!\n"
    assert_round_trip(screen)


def test_pending_wrap() -> None:
    screen = fed("abcde", 5, 2)
    assert screen.state().cursor == (5, 0)
    copy = assert_round_trip(screen)
    screen.feed(b"f")
    copy.feed(b"f")
    assert copy.text() == screen.text() == "abcde\nf\n"
    # A line feed ends the pending wrap, as in xterm.
    screen = fed("abcde\nX", 5, 2)
    assert screen.text() == "abcde\n    X\n"


def test_pending_wrap_after_a_wide_character() -> None:
    screen = fed("abc中", 5, 2)
    assert screen.state().cursor == (5, 0)
    assert_round_trip(screen)


def test_alternate_screen_keeps_the_main_screen() -> None:
    screen = fed("main\x1b[2;3H\x1b[?1049h\x1b[Halt\x1b[?25l", 10, 3)
    assert screen.text() == "alt\n\n\n"
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\x1b[?1049l")
        assert terminal.text() == "main\n\n\n"
    assert copy.state() == screen.state()
    assert screen.state().cursor == (2, 1)


@pytest.mark.parametrize("mode", [47, 1047])
def test_alternate_screen_without_cursor_save(mode: int) -> None:
    screen = fed(f"main\x1b[?{mode}halt\x1b[2;1H", 10, 3)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(f"\x1b[?{mode}l".encode())
    assert copy.state() == screen.state()
    assert screen.text() == "main\n\n\n"
    assert screen.state().cursor == (0, 1)


def test_scroll_region_survives_the_snapshot() -> None:
    screen = fed("1\r\n2\r\n3\r\n4\x1b[2;3r\x1b[3;1H", 5, 4)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\n")
        assert terminal.text() == "1\n3\n\n4\n"
    assert copy.state() == screen.state()


def test_origin_mode() -> None:
    screen = fed("\x1b[2;4r\x1b[?6h\x1b[2;3Hx", 6, 5)
    assert screen.state().cursor == (3, 2)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\x1b[1;1Hy")
    assert copy.state() == screen.state()
    assert screen.text() == "\ny\n  x\n\n\n"


def test_saved_cursor() -> None:
    screen = fed("\x1b[3;4H\x1b[1;31m\x1b(0\x1b7\x1b[m\x1b(B\x1b[H", 8, 4)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\x1b8q")
    assert copy.state() == screen.state()
    assert cell(screen, 3, 2) == Cell("─", fg="31", bold=True)


def test_saved_cursor_in_origin_mode() -> None:
    screen = fed("\x1b[2;3r\x1b[?6h\x1b[2;2H\x1b7\x1b[?6l\x1b[r\x1b[4;4H", 8, 4)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\x1b8o")
    assert copy.state() == screen.state()
    assert screen.state().modes == replay(screen).state().modes


def test_title() -> None:
    screen = fed("\x1b]0;both\x07\x1b]2;window\x1b\\")
    assert screen.title == "window"
    assert screen.to_json()["title"] == "window"
    assert_round_trip(screen)
    screen = fed(b"\x1b]2;" + b"x" * 5000 + b"\x07")
    assert screen.title == "x" * MAX_TITLE


def test_cursor_visibility() -> None:
    screen = fed("\x1b[?25l")
    assert screen.to_json()["cursor"]["visible"] is False
    assert_round_trip(screen)
    assert replay(fed("\x1b[?25l\x1b[?25h")).to_json()["cursor"]["visible"] is True


@pytest.mark.parametrize(
    ("sequence", "name"),
    [
        ("\x1b[?1h", "application_cursor_keys"),
        ("\x1b=", "application_keypad"),
        ("\x1b[?2004h", "bracketed_paste"),
        ("\x1b[?1000h", "mouse_normal"),
        ("\x1b[?1002h", "mouse_button_event"),
        ("\x1b[?1003h", "mouse_any_event"),
        ("\x1b[?1005h", "mouse_utf8"),
        ("\x1b[?1006h", "mouse_sgr"),
        ("\x1b[?1015h", "mouse_urxvt"),
        ("\x1b[?1004h", "focus_events"),
        ("\x1b[4h", "insert"),
        ("\x1b[?6h", "origin"),
        ("\x1b[?5h", "reverse_video"),
        ("\x1b[?7l", "autowrap"),
    ],
)
def test_modes(sequence: str, name: str) -> None:
    default = PyteScreen().to_json()["modes"][name]
    screen = fed(sequence)
    assert screen.to_json()["modes"][name] is not default
    copy = assert_round_trip(screen)
    assert copy.to_json()["modes"][name] is not default


def test_insert_mode_after_the_snapshot() -> None:
    screen = fed("abc\x1b[1;2H\x1b[4h")
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"X")
    assert copy.text().startswith("aXbc\n")
    assert copy.state() == screen.state()


def test_reverse_video_is_a_display_mode() -> None:
    # pyte rewrites every cell; xterm only changes how they are drawn.
    screen = fed("\x1b[7ma\x1b[27mb\x1b[?5h\x1b[?5l")
    assert [c.reverse for c in screen.state().lines[0][:2]] == [True, False]


def test_erase_uses_only_the_background() -> None:
    screen = fed("\x1b[1;4;44mab\x1b[1;1H\x1b[K", 4, 2)
    assert screen.state().lines[0] == (Cell(" ", bg="44"),) * 4
    screen.feed(b"\x1b[2J")
    assert screen.state().lines[1] == (Cell(" ", bg="44"),) * 4
    assert_round_trip(screen)


def test_line_feed_below_the_scroll_region_does_not_scroll() -> None:
    screen = fed("top\x1b[1;2r\x1b[4;1H\n\n", 5, 4)
    assert screen.text() == "top\n\n\n\n"
    assert screen.state().cursor == (0, 3)


def test_charsets() -> None:
    screen = fed("\x1b(0lqk\x1b(B \x1b)0\x0eq\x0fq")
    assert screen.text().split("\n")[0] == "┌─┐ ─q"
    screen.feed(b"\x0e")
    copy = assert_round_trip(screen)
    copy.feed(b"x")
    screen.feed(b"x")
    assert copy.state() == screen.state()
    assert "│" in copy.text()


def test_resize() -> None:
    screen = fed("1\r\n2\r\n3\r\n4\x1b[2;3r\x1b[2;1H", 6, 4)
    screen.resize(4, 2)
    # Rows below the cursor go first, then rows at the top, as in xterm.js.
    assert screen.text() == "1\n2\n"
    assert screen.state().margins is None
    assert_round_trip(screen)
    screen = fed("1\r\n2\r\n3\r\n4", 6, 4)
    screen.resize(3, 2)
    assert screen.text() == "3\n4\n"
    assert screen.state().cursor == (1, 1)
    screen.resize(10, 5)
    assert (screen.columns, screen.rows) == (10, 5)
    assert screen.text() == "3\n4\n\n\n\n"
    assert_round_trip(screen)
    with pytest.raises(ValueError, match="at least one"):
        screen.resize(0, 5)


def test_resize_cuts_wide_characters_cleanly() -> None:
    screen = fed("ab中", 6, 1)
    screen.resize(3, 1)
    assert [c.data for c in screen.state().lines[0]] == ["a", "b", " "]
    assert_round_trip(screen)


def test_resize_on_the_alternate_screen() -> None:
    screen = fed("main\x1b[?1049halt", 8, 3)
    screen.resize(3, 2)
    copy = assert_round_trip(screen)
    for terminal in (screen, copy):
        terminal.feed(b"\x1b[?1049l")
    assert copy.state() == screen.state()
    assert screen.text() == "mai\n\n"


def test_json() -> None:
    info = fed("hi\x1b]2;t\x07").to_json()
    assert info["columns"] == 10
    assert info["rows"] == 4
    assert info["title"] == "t"
    assert info["cursor"] == {"x": 2, "y": 0, "visible": True}
    assert info["alternate_screen"] is False
    assert info["modes"]["autowrap"] is True
    assert info["lines"] == ["hi", "", "", ""]
    assert fed("abcde", 5, 1).to_json()["cursor"]["x"] == 4  # drawn where it waits to wrap


def test_offset_counts_every_byte() -> None:
    screen = PyteScreen()
    screen.feed(b"\xe4\xb8")
    screen.feed(b"\xad\x1b[")
    screen.feed(b"")
    assert screen.offset == 5
    screen.feed(b"1m")
    assert screen.text().startswith("中\n")


def test_ansi_is_like_capture_pane_e() -> None:
    screen = fed("\x1b[1mB\x1b[m \x1b[38;5;174mx\x1b[2my\r\n\x1b[mz")
    assert screen.ansi().split("\n")[:2] == [
        "\x1b[1mB\x1b[0m\x1b[39m\x1b[49m \x1b[38;5;174mx\x1b[2my",
        "\x1b[0m\x1b[39m\x1b[49mz",
    ]


# --- hostile output ---------------------------------------------------------------


class Listening(Emulator):
    """The emulator, noting every way pyte has to answer the agent."""

    def __init__(self) -> None:
        super().__init__(80, 24)
        self.answers: list[object] = []

    def write_process_input(self, data: str) -> None:
        self.answers.append(data)

    def report_device_attributes(self, mode: int = 0, **kwargs: bool) -> None:
        self.answers.append(("DA", mode))

    def report_device_status(self, mode: int) -> None:
        self.answers.append(("DSR", mode))


QUERIES = [
    "\x1b[6n\x1b[5n\x1b[c\x1b[0c\x1b[>c\x1b[=c\x1b[>q\x1b[?u\x1b[14t\x1b[18t\x1b]10;?\x07\x1bZ",
    "\x1b[?6h\x1b[6n\x1b[?6n\x1bP$qm\x1b\\\x1b[?2026$p\x1b[x\x1b]4;1;?\x1b\\\x05",
]


def test_queries_get_no_answer() -> None:
    emulator = Listening()
    parser = Parser(emulator)
    for query in QUERIES:
        parser.feed(query)
    assert emulator.answers == []
    screen = PyteScreen()
    for query in QUERIES:
        screen.feed(query.encode())
    assert screen.text() == "\n" * 24


def test_endless_osc_is_bounded() -> None:
    screen = PyteScreen(20, 2)
    screen.feed(b"\x1b]2;")
    piece = b"A" * 65536
    for _ in range(160):  # 10 MiB
        screen.feed(piece)
    assert screen.state().pending[-1] == ("2;" + "A" * MAX_OSC)[:MAX_OSC]
    assert len(screen.snapshot()) < MAX_OSC + 200
    screen.feed(b"\x07still works")
    assert screen.title == "A" * MAX_TITLE
    assert screen.text() == "still works\n\n"


def test_endless_dcs_and_csi_are_bounded() -> None:
    screen = PyteScreen(20, 2)
    screen.feed(b"\x1bP")
    screen.feed(b"q" * 1_000_000)
    screen.feed(b"\x1b\\\x1b[")
    screen.feed(b"1;" * 500_000)
    assert len(screen.snapshot()) < 1000
    screen.feed(b"mok")
    assert screen.text() == "ok\n\n"


# Huge counts are clamped to the grid: a loop per unit would run for hours,
# so a hang guard (not a speed claim: speed is `make bench`'s) catches it.
@pytest.mark.timeout(60)
def test_huge_parameters() -> None:
    screen = PyteScreen(20, 5)
    for sequence in [
        b"\x1b[99999999999A",
        b"\x1b[1;99999999H",
        b"\x1b[99999@",
        b"\x1b[99999P",
        b"\x1b[99999L",
        b"\x1b[99999M",
        b"\x1b[99999S",
        b"\x1b[99999T",
        b"\x1b[99999X",
        b"\x1b[99999I",
        b"\x1b[99999Z",
        b"x\x1b[99999999999b",
        b"\x1b[" + b"9" * 10_000 + b"C",
        b"\x1b[38;5;99999999;48;2;999;1;1m",
        b"\x1b[?99999999h",
        b"\x1b[99999;99999r",
    ]:
        screen.feed(sequence)
        assert_round_trip(screen)


def test_garbage_does_not_crash() -> None:
    screen = PyteScreen(10, 3)
    junk = bytes(range(256)) * 4 + b"\xff\xfe\x00\x1b\x1b[\x1b]\x9b\x9d\xc2\x9b\xc2\x9d"
    screen.feed(junk)
    screen.feed(b"\x1b[?3h\x1b[?3l")  # DECCOLM must not resize: the caller sizes the screen
    assert (screen.columns, screen.rows) == (10, 3)
    assert_round_trip(screen)
    screen.feed(b"\x18\x1bcok")
    assert screen.text() == "ok\n\n\n"


def test_combining_characters_are_bounded() -> None:
    screen = fed(b"e" + "\u0301".encode() * 100_000, 5, 1)
    assert len(cell(screen, 0, 0).data) <= 32
    assert_round_trip(screen)


def test_a_bug_of_ours_is_contained(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(Exception):
        pass

    def explode(*args: object) -> None:
        raise Broken

    screen = PyteScreen()
    monkeypatch.setattr(screen._screen, "erase_in_line", explode)
    with caplog.at_level("DEBUG", logger="gateway.screen"):
        screen.feed(b"\x1b[K")
        screen.feed(b"\x1b[K")
    assert len(caplog.records) == 1
    screen.feed(b"fine")
    assert screen.text().startswith("fine\n")
