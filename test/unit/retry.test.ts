import { describe, expect, it } from "vitest";
import { StorageOptionError } from "../../src/errors.js";
import { retryPolicy, retrying, type RetryPolicy } from "../../src/retry.js";

// How often a failed statement is tried, without a database: failures are made up with real drivers' codes.
const notApplied = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
const unknown = () => Object.assign(new Error("Connection terminated unexpectedly"), { code: "ECONNRESET" });
const permanent = () => Object.assign(new Error("permission denied"), { code: "42501" });
const fast: RetryPolicy = { attempts: 4, baseDelayMs: 0, maxDelayMs: 0 };

/** Runs `retrying` over failures given in order, then success; answers how many tries it took and how it ended. */
async function tries(
  failures: (() => Error)[],
  policy: RetryPolicy,
  onlyIfNotApplied = false,
): Promise<{ tries: number; outcome: unknown }> {
  let count = 0;
  const outcome = await retrying(
    async () => {
      const fail = failures[count];
      count += 1;
      if (fail !== undefined) throw fail();
      return "done";
    },
    policy,
    { onlyIfNotApplied },
  ).catch((error: unknown) => (error as Error).message);
  return { tries: count, outcome };
}

describe("retrying", () => {
  it("retries transient failures until one try succeeds", async () => {
    expect(await tries([notApplied, unknown, notApplied], fast)).toStrictEqual({ tries: 4, outcome: "done" });
  });

  it("gives up after the policy's attempts, with the last failure", async () => {
    expect(await tries([notApplied, notApplied, notApplied, unknown, notApplied], fast)).toStrictEqual({
      tries: 4,
      outcome: "Connection terminated unexpectedly",
    });
  });

  it("surfaces a failure that is not transient at once", async () => {
    expect(await tries([permanent], fast)).toStrictEqual({ tries: 1, outcome: "permission denied" });
    expect(await tries([notApplied, permanent], fast)).toStrictEqual({ tries: 2, outcome: "permission denied" });
  });

  it("with onlyIfNotApplied, retries what certainly did not run, and stops at what may have", async () => {
    expect(await tries([notApplied, notApplied], fast, true)).toStrictEqual({ tries: 3, outcome: "done" });
    expect(await tries([unknown], fast, true)).toStrictEqual({
      tries: 1,
      outcome: "Connection terminated unexpectedly",
    });
    expect(await tries([notApplied, unknown], fast, true)).toStrictEqual({
      tries: 2,
      outcome: "Connection terminated unexpectedly",
    });
  });

  it("tries once with retry: false", async () => {
    expect(await tries([notApplied], retryPolicy(false))).toStrictEqual({
      tries: 1,
      outcome: "connect ECONNREFUSED 127.0.0.1:5432",
    });
  });
});

describe("retryPolicy", () => {
  it("fills in 3 tries, 50 ms doubling up to 1 s", () => {
    expect(retryPolicy(undefined)).toStrictEqual({ attempts: 3, baseDelayMs: 50, maxDelayMs: 1000 });
    expect(retryPolicy({ attempts: 1 })).toStrictEqual({ attempts: 1, baseDelayMs: 50, maxDelayMs: 1000 });
    expect(retryPolicy(false)).toStrictEqual({ attempts: 1, baseDelayMs: 0, maxDelayMs: 0 });
  });

  it.each([
    { attempts: 0 },
    { attempts: 1.5 },
    { baseDelayMs: -1 },
    { maxDelayMs: Infinity },
    { baseDelayMs: Number.NaN },
  ])("refuses %j as the retry option", (options) => {
    expect(() => retryPolicy(options)).toThrow(StorageOptionError);
    expect(() => retryPolicy(options)).toThrow(/retry: false turns it off/);
  });
});
