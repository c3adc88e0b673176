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
  const ORIGIN = "http://127.0.0.1:8080";
  /** The login page's query with `next` exactly this string (as a link would carry it). */
  const query = (next) => `?next=${encodeURIComponent(next)}`;
  /** Where the browser would go: location.assign(answer) on /login. */
  const landing = (answer) => new URL(answer, `${ORIGIN}/login?next=x`);
  const assertSameOrigin = (answer, what) => {
    assert.equal(typeof answer, "string", what);
    const shown = `${what}: ${JSON.stringify(answer)}`;
    assert.ok(answer.startsWith("/") && !answer.startsWith("//"), shown);
    assert.equal(landing(answer).origin, ORIGIN, shown);
  };

  it("keeps paths on this site, with their query and fragment", () => {
    assert.equal(safeNext(query("/agents/x/?a=1#h"), ORIGIN), "/agents/x/?a=1#h");
    assert.equal(safeNext("?next=/agents/shell/", ORIGIN), "/agents/shell/");
    assert.equal(safeNext("?next=%2Fagents%2Fa%2520b%2F", ORIGIN), "/agents/a%20b/");
    assert.equal(safeNext(query("/"), ORIGIN), "/");
  });

  it("goes home without a next", () => {
    for (const search of ["", "?", "?next=", "?next", "?other=/agents/x/"]) {
      assert.equal(safeNext(search, ORIGIN), "/", JSON.stringify(search));
    }
  });

  it("refuses other sites, however the URL parser is tricked into them", () => {
    const hostile = [
      // Tab, newline and carriage return are stripped by the URL parser: "//evil.example/".
      "/\t/evil.example/",
      "/\n/evil.example/",
      "/\r/evil.example/",
      "/\r\n/evil.example/",
      "\t//evil.example/",
      "/\t\\evil.example/",
      // Backslashes are slashes in http(s) URLs.
      "/\\evil.example",
      "\\\\evil.example",
      "\\/evil.example",
      // Scheme-relative, with any number of slashes.
      "//evil.example",
      "///evil.example",
      "////evil.example/agents/",
      // Leading spaces and control characters are trimmed.
      "  //evil.example",
      " \\\\evil.example",
      "\x00//evil.example",
      // Other schemes and hosts, any case.
      "https://evil.example",
      "http://evil.example/agents/x/",
      "HTTPS://evil.example",
      "Http://evil.example",
      "https:evil.example",
      "http://127.0.0.1:8080@evil.example/",
      "http://127.0.0.1:8081/",
      "https://127.0.0.1:8080/",
      "javascript:alert(1)",
      "JavaScript:alert(1)",
      " javascript:alert(1)",
      "data:text/html,<script>alert(1)</script>",
      "DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
      "vbscript:msgbox(1)",
      "blob:http://127.0.0.1:8080/0b9c7f2a",
      "blob:https://evil.example/0b9c7f2a",
      "file:///etc/passwd",
      // Paths that normalize to "//evil.example": as a link that names another host.
      "/.//evil.example",
      "/a/..//evil.example",
      "/%2e%2e//evil.example",
      "http://127.0.0.1:8080//evil.example",
      "http://127.0.0.1:8080/.//evil.example",
    ];
    for (const next of hostile) {
      assert.equal(safeNext(query(next), ORIGIN), "/", JSON.stringify(next));
    }
  });

  it("refuses other sites written percent-encoded in the link", () => {
    // The query exactly as it appears in a crafted /login link.
    const links = [
      "?next=/%09/evil.example/",
      "?next=/%0a/evil.example/",
      "?next=/%0A/evil.example/",
      "?next=/%0d/evil.example/",
      "?next=/%0D%0A/evil.example/",
      "?next=%09//evil.example",
      "?next=%2F%09%2Fevil.example%2F",
      "?next=/%5Cevil.example",
      "?next=/%5cevil.example",
      "?next=%5C%5Cevil.example",
      "?next=%2F%2Fevil.example",
      "?next=%2F%2F%2Fevil.example",
      "?next=%20%20//evil.example",
      "?next=++//evil.example",
      "?next=%00//evil.example",
      "?next=https%3A%2F%2Fevil.example",
      "?next=HTTPS%3A%2F%2Fevil.example",
      "?next=javascript%3Aalert(1)",
      "?next=data%3Atext%2Fhtml%2C%3Cscript%3Ealert(1)%3C%2Fscript%3E",
      "?a=1&next=//evil.example",
    ];
    for (const search of links) {
      assert.equal(safeNext(search, ORIGIN), "/", search);
    }
  });

  it("keeps look-alikes that are really paths on this site", () => {
    // An encoded backslash stays in the path ("/%5Cevil.example"), an @ is no userinfo here.
    assert.equal(safeNext(query("/%5Cevil.example"), ORIGIN), "/%5Cevil.example");
    assert.equal(safeNext("?next=/%255Cevil.example", ORIGIN), "/%5Cevil.example");
    assert.equal(safeNext(query("/@evil.example"), ORIGIN), "/@evil.example");
    assert.equal(safeNext(query("/%09/evil.example/"), ORIGIN), "/%09/evil.example/");
    assert.equal(safeNext("?next=/%2509/evil.example/", ORIGIN), "/%09/evil.example/");
    assert.equal(safeNext(query("HTTP://127.0.0.1:8080/agents/x/"), ORIGIN), "/agents/x/");
    assert.equal(safeNext(query("http://user:pw@127.0.0.1:8080/agents/x/"), ORIGIN), "/agents/x/");
    assert.equal(safeNext(query("  /agents/x/"), ORIGIN), "/agents/x/");
    assert.equal(safeNext(query("agents/x/"), ORIGIN), "/agents/x/");
    assert.equal(safeNext(query("/agents/../admin"), ORIGIN), "/admin");
  });

  it("answers a same-origin path for anything at all", () => {
    const pieces = ["/", "\\", "\t", "\n", "\r", " ", ".", "..", "@", ":", "%", "%2F", "%5C"];
    pieces.push("evil.example", "http:", "https:", "?", "#");
    for (const a of pieces) {
      for (const b of pieces) {
        for (const c of pieces) {
          const next = a + b + c + "evil.example/";
          const answer = safeNext(query(next), ORIGIN);
          assertSameOrigin(answer, JSON.stringify(next));
          assert.notEqual(landing(answer).hostname, "evil.example", JSON.stringify(next));
        }
      }
    }
  });

  it("is judged against the page's own origin", () => {
    assert.equal(safeNext(query("/x"), "https://gw.example"), "/x");
    assert.equal(safeNext(query("https://gw.example/x"), "https://gw.example"), "/x");
    assert.equal(safeNext(query("http://gw.example/x"), "https://gw.example"), "/");
    assert.equal(safeNext(query("https://gw.example:8443/x"), "https://gw.example"), "/");
    assert.equal(safeNext(query("/x"), "https://gw.example/some/page?q#h"), "/x");
    // No usable origin (opaque, missing, not http): home, never a guess.
    for (const origin of [undefined, "", "null", "file:///tmp/login.html", "about:blank"]) {
      assert.equal(safeNext(query("/x"), origin), "/", String(origin));
    }
  });
});
