import { afterEach, describe, expect, it, vi } from "vitest";
import { KeyContext } from "../../src/codec.js";
import { attemptsLost, retryPolicy, retrying, type RetryPolicy } from "../../src/retry.js";
import { optionError } from "../support/refusals.js";

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

  it("does not retry a statement the client gave up on (a timeout or an abort), which may still run on the server", async () => {
    const timedOut = () => new Error("Query read timeout");
    const aborted = () =>
      Object.assign(new Error("Error connecting to database: AbortError"), {
        sourceError: new DOMException("This operation was aborted", "AbortError"),
      });
    for (const onlyIfNotApplied of [false, true]) {
      expect(await tries([timedOut], fast, onlyIfNotApplied)).toStrictEqual({
        tries: 1,
        outcome: "Query read timeout",
      });
      expect(await tries([aborted], fast, onlyIfNotApplied)).toStrictEqual({
        tries: 1,
        outcome: "Error connecting to database: AbortError",
      });
    }
    expect(await tries([notApplied, timedOut], fast)).toStrictEqual({ tries: 2, outcome: "Query read timeout" });
  });

  it("does not retry the server's statement_timeout (57014): it rolled back, and would time out again", async () => {
    const cancelled = () => Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" });
    expect(await tries([cancelled], fast)).toStrictEqual({
      tries: 1,
      outcome: "canceling statement due to statement timeout",
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
  it("fills in 6 tries, 100 ms doubling up to 1 s", () => {
    expect(retryPolicy(undefined)).toStrictEqual({ attempts: 6, baseDelayMs: 100, maxDelayMs: 1000 });
    expect(retryPolicy({ attempts: 1 })).toStrictEqual({ attempts: 1, baseDelayMs: 100, maxDelayMs: 1000 });
    expect(retryPolicy(false)).toStrictEqual({ attempts: 1, baseDelayMs: 0, maxDelayMs: 0 });
  });

  it("allows delays of 0 ms: retries at once", () => {
    expect(retryPolicy({ baseDelayMs: 0 })).toStrictEqual({ attempts: 6, baseDelayMs: 0, maxDelayMs: 1000 });
    expect(retryPolicy({ maxDelayMs: 0 })).toStrictEqual({ attempts: 6, baseDelayMs: 100, maxDelayMs: 0 });
    expect(retryPolicy({ attempts: 10, baseDelayMs: 0, maxDelayMs: 0 })).toStrictEqual({
      attempts: 10,
      baseDelayMs: 0,
      maxDelayMs: 0,
    });
  });

  it.each([
    { attempts: 0 },
    { attempts: -1 },
    { attempts: 1.5 },
    { attempts: Infinity },
    { baseDelayMs: -1 },
    { maxDelayMs: -1 },
    { baseDelayMs: -0.5, maxDelayMs: 0 },
    { maxDelayMs: Infinity },
    { baseDelayMs: Infinity },
    { baseDelayMs: Number.NaN },
    { maxDelayMs: Number.NaN },
  ])("refuses %j as the retry option", (options) => {
    const error = optionError(() => retryPolicy(options));
    expect(error.option).toBe("retry");
    expect(error.message).toBe(
      "retry needs a whole number of attempts from 1 and delays of 0 ms or more; retry: false turns it off",
    );
  });
});

describe("retrying: backoff", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /**
   * Runs `retrying` over `failures` transient failures with `policy`, answering each wait at once; answers the
   * waits asked of setTimeout, in milliseconds.
   */
  async function waits(policy: RetryPolicy, failures: number): Promise<number[]> {
    const asked: number[] = [];
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((callback: () => void, ms: number) => {
      asked.push(ms);
      callback();
      return 0;
    }) as typeof setTimeout);
    let count = 0;
    await retrying(
      async () => {
        count += 1;
        if (count <= failures) throw notApplied();
        return "done";
      },
      policy,
      { onlyIfNotApplied: false },
    ).catch(() => undefined);
    return asked;
  }

  const policy: RetryPolicy = { attempts: 7, baseDelayMs: 100, maxDelayMs: 1000 };
  // The delay before each retry: the base, doubled for each further one, up to the maximum.
  const delays = [100, 200, 400, 800, 1000, 1000];

  it("waits between half the delay and all of it before each retry", async () => {
    const asked = await waits(policy, 6);
    expect(asked).toHaveLength(delays.length);
    asked.forEach((ms, i) => {
      const delay = delays[i] as number;
      expect(ms).toBeGreaterThanOrEqual(delay / 2);
      expect(ms).toBeLessThanOrEqual(delay);
    });
  });

  it("spreads the waits over that range with Math.random (jitter)", async () => {
    for (const [random, share] of [
      [0, 0.5],
      [0.5, 0.75],
      [0.999, 0.9995],
    ] as const) {
      vi.spyOn(Math, "random").mockReturnValue(random);
      expect(await waits(policy, 6)).toStrictEqual(delays.map((delay) => delay * share));
      vi.restoreAllMocks();
    }
  });

  it("waits only between tries: none after a success or the last failure, or for a failure that is not transient", async () => {
    expect(await waits(policy, 0)).toStrictEqual([]);
    expect(await waits(policy, 2)).toHaveLength(2);
    expect(await waits({ ...policy, attempts: 3 }, 10)).toHaveLength(2);
  });

  it("with delays of 0, retries at once", async () => {
    expect(await waits({ attempts: 3, baseDelayMs: 0, maxDelayMs: 0 }, 5)).toStrictEqual([0, 0]);
  });

  it("caps a base delay above the maximum at the maximum", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    expect(await waits({ attempts: 3, baseDelayMs: 5000, maxDelayMs: 200 }, 5)).toStrictEqual([150, 150]);
  });
});

describe("attemptsLost", () => {
  const at = new KeyContext("chat", "bot:chat");

  it("says nothing was written, and is not in doubt, when every try was answered", () => {
    const error = attemptsLost("update", at);
    expect({ message: error.message, inDoubt: error.inDoubt }).toStrictEqual({
      message: 'update() of key "chat" lost to concurrent writers 100 times in a row; nothing was written, try again',
      inDoubt: false,
    });
  });

  it("says a try whose answer was lost may have been written, and is in doubt, when one was", () => {
    const error = attemptsLost("write", at, true);
    expect({ message: error.message, inDoubt: error.inDoubt }).toStrictEqual({
      message:
        'write() of key "chat" lost to concurrent writers 100 times in a row; a try whose answer was lost may have ' +
        "been written before another writer's change: read the key to see",
      inDoubt: true,
    });
  });
});
