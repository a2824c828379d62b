import { describe, expect, it } from "vitest";
import { ClientStateError } from "../../src/errors.js";
import { clientGaveUp, errorChain, mayHaveApplied, transience } from "../../src/driver/error-reading.js";

// How sure a failure is not to have taken effect, on made-up errors at the edges of each rule (real drivers' errors
// are in error-shapes.test.ts).
const coded = (code: unknown, fields: Record<string, unknown> = {}) =>
  Object.assign(new Error("failed"), { code, ...fields });

/** `error` wrapped `depth` times as the cause of another error. */
function causedAt(depth: number, error: unknown): unknown {
  let node = error;
  for (let i = 0; i < depth; i += 1) node = new Error(`wrapper ${i}`, { cause: node });
  return node;
}

describe("transience", () => {
  it.each([
    "57P01",
    "57P02",
    "57P03",
    // A read-only server (a standby, or a demoted primary) refused the write.
    "25006",
    "40001",
    "40P01",
    "53300",
    // The server would not set up the connection (08001, 08004): no statement was sent on it.
    "08001",
    "08004",
    "ECONNREFUSED",
    "EAI_AGAIN",
    "CONNECT_TIMEOUT",
    "ERR_POSTGRES_CONNECTION_REFUSED",
    "ERR_POSTGRES_CONNECTION_TIMEOUT",
  ])("%s did not take effect", (code) => {
    expect(transience(coded(code))).toBe("not-applied");
  });

  it.each([
    "08000",
    "08003",
    "08006",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "CONNECTION_CLOSED",
    "ERR_POSTGRES_CONNECTION_CLOSED",
    "CONNECTION_DESTROYED",
  ])("%s may have taken effect", (code) => {
    expect(transience(coded(code))).toBe("unknown");
  });

  it.each([
    "XECONNREFUSED",
    "ECONNREFUSEDX",
    "X40001",
    "40001X",
    "ERR_POSTGRES_CONNECTION_REFUSEDX",
    "XECONNRESET",
    "ECONNRESETX",
    "EPIPES",
    "X08006",
    "08006X",
    "NOT_CONNECTION_CLOSED",
    "57P04",
    "08002X",
  ])("a code with more around it is another code: %s is not transient", (code) => {
    expect(transience(coded(code))).toBeUndefined();
  });

  it("finds the SQLSTATE in errno too (Bun)", () => {
    expect(transience(coded("ERR_POSTGRES_SERVER_ERROR", { errno: "40P01" }))).toBe("not-applied");
    expect(transience(coded("ERR_POSTGRES_SERVER_ERROR", { errno: "08006" }))).toBe("unknown");
  });

  it("takes only string codes and messages", () => {
    expect(transience(coded(40001))).toBeUndefined();
    expect(transience(coded(8006))).toBeUndefined();
    // Objects that would read as a known message if made strings.
    const as = (text: string) => ({ toString: () => text });
    expect(transience({ message: as("socket hang up") })).toBeUndefined();
    expect(
      transience({ message: as("Client has encountered a connection error and is not queryable") }),
    ).toBeUndefined();
  });

  it("counts an unreachable host only while connecting: on an open socket the statement may have been sent", () => {
    for (const code of ["EHOSTUNREACH", "ENETUNREACH"]) {
      expect(transience(coded(code, { syscall: "connect" }))).toBe("not-applied");
      expect(transience(coded(code, { syscall: "write" }))).toBeUndefined();
      expect(transience(coded(code))).toBeUndefined();
    }
    expect(transience(coded("XEHOSTUNREACH", { syscall: "connect" }))).toBeUndefined();
    expect(transience(coded("EHOSTUNREACHX", { syscall: "connect" }))).toBeUndefined();
    // Connecting is not enough: the code must say the host is unreachable.
    expect(transience(coded("EACCES", { syscall: "connect" }))).toBeUndefined();
  });

  it("a client that gave up (a timeout or an abort) is not retried: the statement may still run on the server", () => {
    expect(transience(new DOMException("The operation timed out.", "TimeoutError"))).toBeUndefined();
    expect(transience(new DOMException("This operation was aborted", "AbortError"))).toBeUndefined();
    expect(transience(Object.assign(new Error("aborted"), { name: "AbortError" }))).toBeUndefined();
    expect(transience(new Error("Query read timeout"))).toBeUndefined();
    // Giving up outweighs a broken connection anywhere in the chain.
    expect(transience(new Error("Query read timeout", { cause: coded("ECONNRESET") }))).toBeUndefined();
    expect(
      transience(new AggregateError([coded("ECONNREFUSED"), new Error("Query read timeout")], "")),
    ).toBeUndefined();
    expect(transience(new DOMException("invalid", "SyntaxError"))).toBeUndefined();
    expect(transience(Object.assign(new Error("x"), { name: "Timeout" }))).toBeUndefined();
  });

  it("a cut-off answer that fails to parse may have taken effect", () => {
    expect(transience(new SyntaxError("Unexpected end of JSON input"))).toBe("unknown");
  });

  it.each([
    "Connection terminated unexpectedly",
    "socket hang up",
    "other side closed",
    "fetch failed",
    "Server error (HTTP status 503)",
    "terminating connection due to administrator command",
  ])("the message %j may have taken effect", (message) => {
    expect(transience(new Error(message))).toBe("unknown");
  });

  it("pg's refusal of a broken connection never sent the statement: not applied, and a pool's next connection may do", () => {
    expect(transience(new Error("Client has encountered a connection error and is not queryable"))).toBe("not-applied");
    expect(transience(new Error("connection error"))).toBeUndefined();
    expect(transience(new Error("The Client has encountered a connection error and is not queryable"))).toBeUndefined();
    expect(transience(new Error("Client has encountered a connection error and is not queryable!"))).toBeUndefined();
  });

  it("is undefined for what is no error object", () => {
    for (const value of [null, undefined, "ECONNRESET", 40001]) expect(transience(value)).toBeUndefined();
  });

  it("looks through cause, Neon's sourceError, an ErrorEvent's error and AggregateError", () => {
    expect(transience(new Error("wrapped", { cause: coded("ECONNRESET") }))).toBe("unknown");
    expect(transience(Object.assign(new Error("neon"), { sourceError: coded("ECONNREFUSED") }))).toBe("not-applied");
    expect(transience({ type: "error", error: coded("ECONNREFUSED") })).toBe("not-applied");
    expect(transience(new AggregateError([new Error("no"), coded("ECONNREFUSED")], ""))).toBe("not-applied");
    expect(transience({ errors: "ECONNRESET" })).toBeUndefined();
  });

  it("takes anywhere in the chain 'unknown' over 'not-applied'", () => {
    expect(transience(new AggregateError([coded("ECONNREFUSED"), coded("ECONNRESET")], ""))).toBe("unknown");
    expect(transience(coded("ECONNREFUSED", { cause: new Error("socket hang up") }))).toBe("unknown");
  });

  it("looks four causes deep, and no deeper", () => {
    expect(transience(causedAt(4, coded("ECONNRESET")))).toBe("unknown");
    expect(transience(causedAt(5, coded("ECONNRESET")))).toBeUndefined();
    expect(transience(causedAt(4, coded("ECONNREFUSED")))).toBe("not-applied");
    expect(transience(causedAt(5, coded("ECONNREFUSED")))).toBeUndefined();
  });

  it("ends on a cycle of causes, and on a null cause", () => {
    const cycle = new Error("a");
    (cycle as { cause?: unknown }).cause = new Error("b", { cause: cycle });
    expect(transience(cycle)).toBeUndefined();
    expect(transience(new Error("x", { cause: null }))).toBeUndefined();
    expect(
      transience(Object.assign(new Error("x"), { sourceError: null, error: null, errors: [null] })),
    ).toBeUndefined();
  });
});

describe("errorChain", () => {
  it("is the error, then what it wraps, depth first, objects only", () => {
    const refused = coded("ECONNREFUSED");
    const reset = coded("ECONNRESET");
    const inner = new Error("inner", { cause: reset });
    const neon = Object.assign(new Error("neon"), { sourceError: refused });
    const event = { type: "error", error: inner };
    const all = new AggregateError([neon, "not an object", null], "all", { cause: event });
    expect(errorChain(all)).toStrictEqual([all, event, inner, reset, neon, refused]);
    expect(errorChain({ errors: "ECONNRESET" })).toHaveLength(1);
    expect(errorChain("ECONNRESET")).toStrictEqual([]);
    expect(errorChain(null)).toStrictEqual([]);
  });
});

describe("clientGaveUp", () => {
  it.each([
    ["pg's query_timeout", new Error("Query read timeout"), "timeout"],
    ["AbortSignal.timeout()", new DOMException("The operation was aborted due to timeout", "TimeoutError"), "timeout"],
    ["an AbortSignal", new DOMException("This operation was aborted", "AbortError"), "abort"],
    ["Bun's cancelled query", coded("ERR_POSTGRES_QUERY_CANCELLED"), "abort"],
    [
      "Neon's wrapped TimeoutError",
      Object.assign(new Error("Error connecting to database: TimeoutError"), {
        sourceError: new DOMException("x", "TimeoutError"),
      }),
      "timeout",
    ],
    [
      "a timeout beside an abort",
      new AggregateError([new DOMException("x", "AbortError"), new Error("Query read timeout")], ""),
      "timeout",
    ],
    ["a timeout five causes deep", causedAt(5, new Error("Query read timeout")), undefined],
    ["the server's statement_timeout", coded("57014"), undefined],
    ["a message that only mentions a timeout", new Error("Query read timeout exceeded"), undefined],
    ["a broken connection", coded("ECONNRESET"), undefined],
    ["no error object", "Query read timeout", undefined],
  ] as const)("%s: %s", (_label, error, gaveUp) => {
    expect(clientGaveUp(error)).toBe(gaveUp);
  });
});

describe("mayHaveApplied", () => {
  it.each([
    ["a client-side timeout", new Error("Query read timeout")],
    ["an abort", new DOMException("This operation was aborted", "AbortError")],
    ["a broken connection", coded("ECONNRESET")],
    [
      "a broken connection under a SQLSTATE",
      coded("57P01", { message: "terminating connection due to administrator command" }),
    ],
    ["an error that says nothing", new Error("something went wrong")],
    ["a driver's code it does not know", coded("SELF_SIGNED_CERT_IN_CHAIN")],
    ["no error object", "failed"],
    ["a host unreachable on an open socket", coded("EHOSTUNREACH", { syscall: "write" })],
  ] as const)("%s may have", (_label, error) => {
    expect(mayHaveApplied(error)).toBe(true);
  });

  it.each([
    ["a SQLSTATE the server answered with", coded("42501")],
    ["the server's statement_timeout", coded("57014")],
    ["a SQLSTATE in errno (Bun)", coded("ERR_POSTGRES_SERVER_ERROR", { errno: "57014" })],
    ["a refused connection", coded("ECONNREFUSED")],
    ["a host unreachable while connecting", coded("EHOSTUNREACH", { syscall: "connect" })],
    ["a name that does not resolve", coded("ENOTFOUND", { syscall: "getaddrinfo" })],
    ["postgres.js after sql.end()", coded("CONNECTION_ENDED")],
    ["a pg Client that was ended", new Error("Client was closed and is not queryable")],
    ["a pg Client that broke", new Error("Client has encountered a connection error and is not queryable")],
    ["PGlite closed", new Error("PGlite is closed")],
    ["PGlite closing", new Error("PGlite is closing")],
    ["the storage's own ClientStateError", new ClientStateError("call await client.connect() first")],
    ["a never-sent error as a cause", new Error("wrapped", { cause: coded("CONNECTION_ENDED") })],
  ] as const)("%s did not", (_label, error) => {
    expect(mayHaveApplied(error)).toBe(false);
  });

  it("matches never-sent codes and messages whole", () => {
    for (const error of [
      coded("XCONNECTION_ENDED"),
      coded("CONNECTION_ENDEDX"),
      coded("XENOTFOUND"),
      new Error("PGlite is closed!"),
      new Error("The Client was closed and is not queryable"),
      coded(42),
      // Objects that would read as a never-sent code or message if made strings.
      coded({ toString: () => "CONNECTION_ENDED" }),
      { message: { toString: () => "PGlite is closed" } },
    ]) {
      expect(mayHaveApplied(error)).toBe(true);
    }
  });
});
