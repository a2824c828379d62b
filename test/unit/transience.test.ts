import { describe, expect, it } from "vitest";
import { transience } from "../../src/retry.js";

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

  it("takes only string codes", () => {
    expect(transience(coded(40001))).toBeUndefined();
    expect(transience(coded(8006))).toBeUndefined();
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

  it("a timeout or an abort (fetch drivers) may have taken effect", () => {
    expect(transience(new DOMException("The operation timed out.", "TimeoutError"))).toBe("unknown");
    expect(transience(new DOMException("This operation was aborted", "AbortError"))).toBe("unknown");
    expect(transience(Object.assign(new Error("aborted"), { name: "AbortError" }))).toBe("unknown");
    expect(transience(new DOMException("invalid", "SyntaxError"))).toBeUndefined();
    expect(transience(Object.assign(new Error("x"), { name: "Timeout" }))).toBeUndefined();
  });

  it("a cut-off answer that fails to parse may have taken effect", () => {
    expect(transience(new SyntaxError("Unexpected end of JSON input"))).toBe("unknown");
  });

  it.each([
    "Connection terminated unexpectedly",
    "connection error",
    "socket hang up",
    "other side closed",
    "fetch failed",
    "Server error (HTTP status 503)",
    "terminating connection due to administrator command",
  ])("the message %j may have taken effect", (message) => {
    expect(transience(new Error(message))).toBe("unknown");
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
