import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ProtocolError,
  ServerCommand,
  agentIdFromPath,
  binaryStringToBytes,
  decodeServerFrame,
  encodeHandshake,
  encodeInput,
  encodeResize,
  safeNext,
  safePreferences,
  socketUrl,
} from "../src/protocol.js";

const utf8 = new TextEncoder();
const fromUtf8 = (bytes) => new TextDecoder().decode(bytes);
/** A server frame as the gateway sends it: command byte + payload. */
const serverFrame = (command, payload) => {
  const body = typeof payload === "string" ? utf8.encode(payload) : payload;
  const out = new Uint8Array(1 + body.length);
  out[0] = command.charCodeAt(0);
  out.set(body, 1);
  return out.buffer; // binaryType = "arraybuffer"
};

describe("client frames", () => {
  it("handshake is a bare JSON object with an empty AuthToken", () => {
    const bytes = encodeHandshake({ columns: 132, rows: 43 });
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(String.fromCharCode(bytes[0]), "{");
    assert.deepEqual(JSON.parse(fromUtf8(bytes)), { AuthToken: "", columns: 132, rows: 43 });
  });

  it("handshake carries a token when given one", () => {
    const bytes = encodeHandshake({ columns: 80, rows: 24, authToken: "t0k" });
    assert.equal(JSON.parse(fromUtf8(bytes)).AuthToken, "t0k");
  });

  it("string input is '0' + UTF-8", () => {
    const bytes = encodeInput("ls é€\r");
    assert.equal(bytes[0], 0x30);
    assert.deepEqual([...bytes.subarray(1)], [...utf8.encode("ls é€\r")]);
    assert.equal(bytes.length, 1 + 9); // é is 2 bytes, € is 3
  });

  it("byte input is '0' + the bytes, not re-encoded", () => {
    const bytes = encodeInput(new Uint8Array([0x1b, 0x5b, 0x4d, 0x80, 0xff]));
    assert.deepEqual([...bytes], [0x30, 0x1b, 0x5b, 0x4d, 0x80, 0xff]);
  });

  it("xterm binary strings become one byte per char", () => {
    assert.deepEqual([...binaryStringToBytes("\x1b[M \xff\x80")], [0x1b, 0x5b, 0x4d, 0x20, 0xff, 0x80]);
    assert.deepEqual([...binaryStringToBytes("")], []);
  });

  it("resize is '1' + {columns, rows}", () => {
    const bytes = encodeResize({ columns: 200, rows: 50 });
    assert.equal(String.fromCharCode(bytes[0]), "1");
    assert.deepEqual(JSON.parse(fromUtf8(bytes.subarray(1))), { columns: 200, rows: 50 });
  });
});

describe("decodeServerFrame", () => {
  it("output keeps the raw bytes", () => {
    const payload = new Uint8Array([0x1b, 0x63, 0x68, 0x69, 0xc3, 0xa9, 0xff]);
    const { command, payload: out } = decodeServerFrame(serverFrame("0", payload));
    assert.equal(command, ServerCommand.OUTPUT);
    assert.ok(out instanceof Uint8Array);
    assert.deepEqual([...out], [...payload]);
  });

  it("input bytes round-trip through an echoed output frame", () => {
    // Input and output share command '0': an echo of the input frame must
    // decode to exactly the bytes that were typed.
    const typed = "héllo\x03";
    const { command, payload } = decodeServerFrame(encodeInput(typed));
    assert.equal(command, "0");
    assert.equal(fromUtf8(payload), typed);
  });

  it("accepts Uint8Array views at an offset and text frames", () => {
    const backing = new Uint8Array([9, 9, 0x30, 0x41, 0x42, 9]);
    const view = backing.subarray(2, 5);
    assert.deepEqual([...decodeServerFrame(view).payload], [0x41, 0x42]);
    const text = decodeServerFrame("1my title");
    assert.deepEqual(text, { command: "1", payload: "my title" });
  });

  it("title is UTF-8 text", () => {
    assert.deepEqual(decodeServerFrame(serverFrame("1", "claude (büro)")), {
      command: ServerCommand.SET_WINDOW_TITLE,
      payload: "claude (büro)",
    });
  });

  it("preferences, status and notice are JSON objects", () => {
    const prefs = decodeServerFrame(serverFrame("2", '{"fontSize":16,"disableLeaveAlert":true}'));
    assert.deepEqual(prefs, { command: "2", payload: { fontSize: 16, disableLeaveAlert: true } });

    // Byte for byte what gateway/ttyd.py Status(...).serialize() produces.
    const status = decodeServerFrame(
      serverFrame("S", '{"state":"reconnecting","columns":80,"rows":24,"retry_in":1.5,"message":"connection refused"}'),
    );
    assert.equal(status.command, ServerCommand.STATUS);
    assert.deepEqual(status.payload, {
      state: "reconnecting",
      columns: 80,
      rows: 24,
      retry_in: 1.5,
      message: "connection refused",
    });

    const notice = decodeServerFrame(serverFrame("N", '{"code":"input_refused","message":"agent unreachable"}'));
    assert.deepEqual(notice, {
      command: ServerCommand.NOTICE,
      payload: { code: "input_refused", message: "agent unreachable" },
    });
  });

  it("passes unknown commands through with their raw payload", () => {
    const { command, payload } = decodeServerFrame(serverFrame("X", new Uint8Array([1, 2, 3])));
    assert.equal(command, "X");
    assert.deepEqual([...payload], [1, 2, 3]);
    // Not one of the known commands, so a caller's switch falls to default.
    assert.ok(!Object.values(ServerCommand).includes(command));
  });

  it("a bare command byte decodes to an empty payload", () => {
    const { command, payload } = decodeServerFrame(serverFrame("0", ""));
    assert.equal(command, "0");
    assert.equal(payload.length, 0);
  });

  it("rejects empty and malformed frames", () => {
    assert.throws(() => decodeServerFrame(new ArrayBuffer(0)), ProtocolError);
    assert.throws(() => decodeServerFrame(serverFrame("2", "{not json")), /preferences: payload is not valid JSON/);
    assert.throws(() => decodeServerFrame(serverFrame("S", "[1,2]")), /status: payload must be a JSON object/);
    assert.throws(() => decodeServerFrame(serverFrame("S", "null")), ProtocolError);
    assert.throws(() => decodeServerFrame(serverFrame("S", '{"columns":80}')), /'state' must be a string/);
    assert.throws(() => decodeServerFrame(serverFrame("N", '{"message":"x"}')), /'code' must be a string/);
    assert.throws(() => decodeServerFrame(serverFrame("1", new Uint8Array([0xff, 0xfe]))), /title: payload is not UTF-8/);
    assert.throws(() => decodeServerFrame(42), ProtocolError);
  });
});

describe("safePreferences", () => {
  it("keeps well-typed cosmetic options and drops the rest", () => {
    const prefs = {
      fontSize: 16,
      cursorStyle: "bar",
      theme: { background: "#101010" },
      cursorBlink: "yes", // wrong type
      lineHeight: 40, // out of range
      convertEol: true, // changes how output is read
      scrollback: 1e9, // unbounded memory
      disableLeaveAlert: true, // ttyd-only
    };
    assert.deepEqual(safePreferences(prefs), { fontSize: 16, cursorStyle: "bar", theme: { background: "#101010" } });
  });

  it("ignores inherited keys", () => {
    const prefs = Object.create({ fontSize: 20 });
    assert.deepEqual(safePreferences(prefs), {});
  });
});

describe("URLs", () => {
  it("socket URL is ws next to the page, scheme matched", () => {
    assert.equal(socketUrl("http://127.0.0.1:8080/agents/demo/"), "ws://127.0.0.1:8080/agents/demo/ws");
    assert.equal(socketUrl("https://gw.example/agents/a%20b/?x=1#top"), "wss://gw.example/agents/a%20b/ws");
    assert.equal(socketUrl("https://gw.example/prefix/agents/demo/"), "wss://gw.example/prefix/agents/demo/ws");
  });

  it("agent id comes from the path", () => {
    assert.equal(agentIdFromPath("/agents/demo/"), "demo");
    assert.equal(agentIdFromPath("/agents/claude-1"), "claude-1");
    assert.equal(agentIdFromPath("/agents/a%20b/"), "a b");
    assert.equal(agentIdFromPath("/prefix/agents/x/"), "x");
    assert.equal(agentIdFromPath("/"), null);
    assert.equal(agentIdFromPath("/agents/%E0%A4%A/"), null);
  });
});

describe("safeNext", () => {
  it("keeps paths on this site", () => {
    assert.equal(safeNext("?next=/agents/shell/"), "/agents/shell/");
    assert.equal(safeNext(""), "/");
  });
  it("refuses other sites", () => {
    for (const bad of ["//evil.net", "https://evil.net", "/\\evil.net", "javascript:alert(1)"]) {
      assert.equal(safeNext(`?next=${encodeURIComponent(bad)}`), "/");
    }
  });
});
