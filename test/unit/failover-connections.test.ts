import { describe, expect, it } from "vitest";
import { PostgresStorageError, StatementFailure } from "../../src/errors.js";
import { runOptions } from "../../src/driver/run-options.js";
import { RuntimeDriver } from "../../src/driver/runtime-driver.js";
import { breaksConnection } from "../../src/driver/error-reading.js";
import type { PostgresClient } from "../../src/driver/clients.js";
import { inOperation } from "../../src/failure.js";

// Which connections a failover leaves unfit, and what a failed checkout means, without a database.
const pgError = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);
const readOnly = () =>
  pgError("cannot execute INSERT in a read-only transaction", { severity: "ERROR", code: "25006" });
const lostMidHandshake = () => new Error("Connection terminated unexpectedly");

/** A pg-style Pool whose connections answer from a script; it records each connection and how it was released. */
function scriptedPool(script: (() => unknown)[]) {
  const released: { id: number; broken: unknown }[] = [];
  let connections = 0;
  let step = 0;
  const next = () => {
    const answer = script[step];
    step += 1;
    return answer === undefined ? { rows: [{ ok: 1 }] } : answer();
  };
  const pool = {
    idleCount: 0,
    totalCount: 0,
    query: () => Promise.resolve({ rows: [] }),
    async connect() {
      const outcome = next();
      if (outcome instanceof Error) throw outcome;
      connections += 1;
      const id = connections;
      return {
        async query() {
          const answer = next();
          if (answer instanceof Error) throw answer;
          return answer;
        },
        release(broken?: unknown) {
          released.push({ id, broken });
        },
        on() {},
        removeListener() {},
      };
    },
  };
  return { pool: pool as unknown as PostgresClient, released };
}

const driverOn = (client: PostgresClient) =>
  new RuntimeDriver({
    client,
    prepare: true,
    createTable: false,
    retry: { attempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
    quotedTable: '"sessions"',
  });
/** The driver's failure as the storage's update() reports it. */
const explained = (failure: unknown) =>
  inOperation({ operation: "update", key: "k", tableName: "sessions", table: '"sessions"' }, failure);
const statement = { text: "UPDATE sessions SET value = value", name: "gps_test" };

describe("after a failover", () => {
  it("a connection that reached a read-only server is discarded, and the retry runs on a new one", async () => {
    // connect, 25006 on it, connect, success
    const { pool, released } = scriptedPool([() => ({}), readOnly, () => ({})]);
    const rows = await driverOn(pool).run(statement, [], runOptions("empty", { onlyIfNotApplied: true }));
    expect(rows).toStrictEqual([{ ok: 1 }]);
    expect(released.map(({ id, broken }) => [id, broken ? "discarded" : "kept"])).toStrictEqual([
      [1, "discarded"],
      [2, "kept"],
    ]);
  });

  it("an update whose connection could not even be checked out is retried, since nothing was sent", async () => {
    const { pool } = scriptedPool([lostMidHandshake, lostMidHandshake, () => ({})]);
    const rows = await driverOn(pool).run(statement, [], runOptions("empty", { onlyIfNotApplied: true }));
    expect(rows).toStrictEqual([{ ok: 1 }]);
  });

  it("a checkout that keeps failing is reported as not in doubt", async () => {
    const { pool } = scriptedPool([lostMidHandshake, lostMidHandshake, lostMidHandshake]);
    const error = await driverOn(pool)
      .run(statement, [], runOptions("empty", { onlyIfNotApplied: true }))
      .catch(explained);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as PostgresStorageError).inDoubt).toBe(false);
  });

  it("the same words after the statement was sent are in doubt, and update() is not retried", async () => {
    const { pool } = scriptedPool([() => ({}), lostMidHandshake]);
    const error = await driverOn(pool)
      .run(statement, [], runOptions("empty", { onlyIfNotApplied: true }))
      .catch(explained);
    expect((error as PostgresStorageError).inDoubt).toBe(true);
    expect((error as Error).message).toMatch(/may have taken effect and was not retried/);
  });

  it("a checkout refused for good (a wrong password, say) is not retried", async () => {
    const { pool } = scriptedPool([() => pgError("password authentication failed", { code: "28P01" })]);
    const error = await driverOn(pool)
      .run(statement, [], runOptions("empty"))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StatementFailure);
    expect((error as StatementFailure).code).toBe("28P01");
  });
});

describe("breaksConnection", () => {
  it.each([
    ["a lost socket", new Error("Connection terminated unexpectedly"), true],
    ["a read-only server", readOnly(), true],
    ["a server shutting down", pgError("terminating connection", { code: "57P01", severity: "FATAL" }), true],
    [
      "a FATAL of any class",
      pgError("terminating connection due to conflict with recovery", { code: "40001", severity: "FATAL" }),
      true,
    ],
    ["a PANIC", pgError("panic", { code: "XX000", severity: "PANIC" }), true],
    [
      "a statement cancelled by a recovery conflict",
      pgError("canceling statement", { code: "40001", severity: "ERROR" }),
      false,
    ],
    ["a missing table", pgError("no such table", { code: "42P01", severity: "ERROR" }), false],
    ["a missing privilege", pgError("permission denied", { code: "42501" }), false],
    ["an answer this library could not read", new PostgresStorageError("neither rows nor { rows }"), false],
  ] as const)("%s: %s", (_what, error, breaks) => {
    expect(breaksConnection(error)).toBe(breaks);
  });
});
