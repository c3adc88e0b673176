"""Real agent CLIs, recorded offline: the corpus the gateway is tested on.

``python -m capture NAME ...`` runs a real CLI (Claude Code, Gemini CLI,
Codex CLI, pinned in ``capture/package.json`` and installed from npm) in tmux
behind ttyd, exactly as the gateway meets an agent, with no network: the
pane's command runs in a private network namespace of its own, beside a
loopback mock of the CLI's model API (:mod:`capture.mock`) that answers from
a script. The recorder drives the CLI with keys and writes, per scenario
(``capture/scenarios/NAME.toml``), into ``tests/fixtures/agents/``:

- ``NAME.bin``: the bytes a ttyd client received (what the gateway sees);
- ``NAME.times.json``: ``[seconds, offset]`` per ttyd message, for replays;
- ``NAME.pane.bin``: what the CLI itself wrote to its terminal
  (``tmux pipe-pane``), to replay into a fresh pane;
- ``NAME.screen.ansi`` / ``NAME.history.ansi``: ``tmux capture-pane -p -e``
  of the screen, and with the whole history (``-S -``);
- ``NAME.json``: the CLI and its version, the keys sent, the mock's requests,
  the final title and cursor, and the scenario's label (state, prompt,
  options, keys).

Nothing here is imported by the gateway.
"""
