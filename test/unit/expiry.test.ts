import { describe, expect, it } from "vitest";
import { skippableMs, timeToLive } from "../../src/expiry.js";
import { optionError } from "../support/refusals.js";

// When an unchanged write-back may be skipped as far as expiry goes, without a database.
describe("skippableMs", () => {
  it("without a TTL of the storage's own: always, unless the row has an expiry, which a write would clear", () => {
    expect(skippableMs(null, null)).toBe(Infinity);
    expect(skippableMs(null, 60_000)).toBe(0);
  });

  it("with a TTL: until half of it has passed, so rows in use are renewed before they expire", () => {
    expect(skippableMs(60_000, 59_000)).toBe(29_000);
    expect(skippableMs(60_000, 30_000)).toBe(0);
    expect(skippableMs(60_000, 10_000)).toBeLessThan(0);
    // A row written without expiry gets one on the next write.
    expect(skippableMs(60_000, null)).toBe(0);
  });
});

describe("timeToLive", () => {
  it("is null when not given, and the number otherwise", () => {
    expect(timeToLive(undefined)).toBeNull();
    expect(timeToLive(null)).toBeNull();
    expect(timeToLive(1500)).toBe(1500);
  });

  it.each([0, -1, Infinity, Number.NaN, "60000"])("refuses %s", (ttl) => {
    const error = optionError(() => timeToLive(ttl as number));
    expect(error.option).toBe("millisecondsToLive");
    expect(error.message).toBe("millisecondsToLive must be a positive number");
  });
});
