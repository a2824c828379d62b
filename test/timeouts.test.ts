import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import { PostgresStorage, PostgresStorageError } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { sleep, useFixture } from "./support/fixture.js";

/**
 * A statement the client stops waiting for is not stopped: pg's `query_timeout`
 * rejects the call, but the server runs the statement to the end and commits
 * it once it gets its lock. So a write, update or delete that timed out on the
 * client is in doubt, and its connection (still busy with it) is never used
 * again. The server's `statement_timeout` (57014) cancels the statement and
 * rolls it back: that failure is certainly not applied. Another transaction
 * holding the row (SELECT … FOR UPDATE) makes each statement wait.
 */
type Value = Record<string, number>;

/** A pg Pool whose connections report their backend's pid and record what they are sent. */
function recordingPool(config: pg.PoolConfig) {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2, ...config });
  const sent: { pid: number; text: string }[] = [];
  const opened: number[] = [];
  pool.on("connect", (client) => {
    const pid = (client as unknown as { processID: number }).processID;
    opened.push(pid);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (statement: string | { text: string }, ...rest: unknown[]) => {
      sent.push({ pid, text: typeof statement === "string" ? statement : statement.text });
      return query(statement, ...rest);
    };
  });
  pool.on("error", () => {}); // a discarded connection may report its end
  return { pool, sent, opened };
}

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("resolved instead of rejecting");
    },
    (error: unknown) => error as PostgresStorageError,
  );

describe.skipIf(inject("backend") === "pglite")("timeouts on a row another transaction holds", () => {
  const db = useFixture();
  const holders: pg.Client[] = [];
  afterEach(async () => {
    for (const holder of holders.splice(0)) await holder.end();
  });

  /** A table with rows w, u, d ({ a: 1 }), and a transaction that holds them until `release()`. */
  async function lockedRows(label: string) {
    const tableName = db.table(label);
    const seed = new PostgresStorage<Value>({ client: db.pool, tableName });
    for (const key of ["w", "u", "d"]) await seed.write(key, { a: 1 });
    const holder = new pg.Client({ connectionString: databaseUrl() });
    holders.push(holder);
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`SELECT key FROM "${tableName}" WHERE key = ANY($1) FOR UPDATE`, [["w", "u", "d"]]);
    return {
      tableName,
      seed,
      /** Ends the holding transaction. */
      release: () => holder.query("COMMIT"),
    };
  }

  /** Waits until none of `pids` runs a statement any more (they finished, or their connection closed). */
  async function settled(pids: number[]) {
    for (let tries = 0; tries < 200; tries += 1) {
      const [row] = await db.admin(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1) AND state = 'active'",
        [pids],
      );
      if (row?.n === 0) return;
      await sleep(25);
    }
    throw new Error(`backends ${pids.join(", ")} still run a statement`);
  }

  it("pg's query_timeout: write, update and delete reject in doubt, naming the timeout, and each commits later", async () => {
    const rows = await lockedRows("query_timeout");
    const { pool, sent, opened } = recordingPool({ query_timeout: 300 });
    try {
      const storage = new PostgresStorage<Value>({
        client: pool,
        tableName: rows.tableName,
        retry: { attempts: 3, baseDelayMs: 0 },
      });
      const timedOut: number[] = [];
      for (const [operation, attempt] of [
        ["write", () => storage.write("w", { a: 2 })],
        ["update", () => storage.update("u", { b: 2 })],
        ["delete", () => storage.delete("d")],
      ] as const) {
        const before = sent.length;
        const error = await rejection(attempt());
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect({ operation: error.operation, inDoubt: error.inDoubt, code: error.code }).toStrictEqual({
          operation,
          inDoubt: true,
          code: undefined,
        });
        expect((error.cause as Error).message).toBe("Query read timeout");
        expect(error.message).toMatch(
          /failed: Query read timeout\. The client stopped waiting for the answer \(a client-side timeout, such as pg's query_timeout\), but the statement may still commit on the server: it may have taken effect and was not retried; read the key to see\. The server's statement_timeout would cancel it and roll it back instead$/,
        );
        expect(error.message).not.toMatch(/connection string/);
        // Sent once, not retried: a retry would queue behind the first, which still runs.
        const statements = sent.slice(before);
        expect(statements).toHaveLength(1);
        timedOut.push((statements[0] as { pid: number }).pid);
      }

      // Each statement still runs on the server, waiting for the row.
      const running = await db.admin(
        "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) AND state = 'active' AND wait_event_type = 'Lock'",
        [timedOut],
      );
      expect(running.map((row) => row.pid).sort()).toStrictEqual([...timedOut].sort());

      // A timed-out connection is discarded, never handed out again: the next statement runs on another one.
      expect(await storage.read("w")).toStrictEqual({ a: 1 }); // reads do not wait for row locks
      const last = sent.at(-1) as { pid: number };
      expect(timedOut).not.toContain(last.pid);
      expect(opened).toContain(last.pid);
      expect(pool.totalCount).toBe(1);

      // Once the row is free, every one of them commits: the rejection was not "not applied".
      await rows.release();
      await settled(timedOut);
      expect(await rows.seed.read("w")).toStrictEqual({ a: 2 });
      expect(await rows.seed.read("u")).toStrictEqual({ a: 1, b: 2 });
      expect(await rows.seed.read("d")).toBeUndefined();
    } finally {
      await pool.end();
    }
  });

  it("the server's statement_timeout (57014): write, update and delete are not applied, and say why", async () => {
    const rows = await lockedRows("statement_timeout");
    const { pool, sent, opened } = recordingPool({ statement_timeout: 300 });
    try {
      const storage = new PostgresStorage<Value>({
        client: pool,
        tableName: rows.tableName,
        retry: { attempts: 3, baseDelayMs: 0 },
      });
      for (const [operation, attempt] of [
        ["write", () => storage.write("w", { a: 2 })],
        ["update", () => storage.update("u", { b: 2 })],
        ["delete", () => storage.delete("d")],
      ] as const) {
        const before = sent.length;
        const error = await rejection(attempt());
        expect({ operation: error.operation, inDoubt: error.inDoubt, code: error.code }).toStrictEqual({
          operation,
          inDoubt: false,
          code: "57014",
        });
        expect(error.message).toMatch(
          /failed: canceling statement due to statement timeout \(SQLSTATE 57014\)\. The server cancelled the statement \(its statement_timeout, or a cancel request\) and rolled it back; a row lock held by another transaction, or a busy server, can keep a statement waiting that long$/,
        );
        expect(sent.slice(before)).toHaveLength(1);
      }
      // The server answered, so the connection is fine and kept.
      expect(opened).toHaveLength(1);
      await rows.release();
      await settled(opened);
      for (const key of ["w", "u", "d"]) expect(await rows.seed.read(key)).toStrictEqual({ a: 1 });
    } finally {
      await pool.end();
    }
  });
});
