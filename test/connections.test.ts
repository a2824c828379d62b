import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { PostgresStorage } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { sleep, useFixture } from "./support/fixture.js";
import { wrappedPool } from "./support/wrapped-pool.js";

/** A pg Pool that counts the connections it opens and the statements it sends, named (prepared) or not. */
function countingPool(max = 4, applicationName = "connections-test") {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max, application_name: applicationName });
  const counts = { opened: 0, named: 0, unnamed: 0 };
  pool.on("connect", (client) => {
    counts.opened += 1;
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    // Counted where the pool's connections send them, so the storage sees the pool as it is.
    (client as { query: unknown }).query = (statement: string | { name?: string }, ...rest: unknown[]) => {
      if (typeof statement === "object" && statement.name) counts.named += 1;
      else counts.unnamed += 1;
      return query(statement, ...rest);
    };
  });
  return { pool, counts };
}

describe("connections and prepared statements", () => {
  const db = useFixture(2);

  it("a cold start opens one connection: the failed first write, the table's creation and the write again share it", async () => {
    const { pool, counts } = countingPool();
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: db.table("cold_one_connection") });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
      expect(counts.opened).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("reads of a missing table reconnect nothing, however many", async () => {
    const { pool, counts } = countingPool();
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: db.table("missing_no_reconnect") });
      for (let i = 0; i < 20; i += 1) expect(await storage.read(`k${i}`)).toBeUndefined();
      expect(await storage.has("k")).toBe(false);
      expect(counts.opened).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("prepares its statements on a pg Pool, and gives the same answers as unprepared", async () => {
    const name = db.table("prepared");
    const { pool, counts } = countingPool();
    try {
      const prepared = new PostgresStorage<{ n: number }>({ client: pool, tableName: name });
      const plain = new PostgresStorage<{ n: number }>({ client: pool, tableName: name, prepare: false });
      await prepared.createTable();
      counts.named = counts.unnamed = 0;
      for (let i = 0; i < 10; i += 1) await prepared.write(`k${i}`, { n: i });
      expect(await plain.read("k3")).toStrictEqual({ n: 3 });
      expect(await prepared.read("k4")).toStrictEqual({ n: 4 });
      expect(await prepared.update("k5", { n: 50 })).toStrictEqual({ n: 50 });
      expect(counts).toMatchObject({ named: 12, unnamed: 1 });
    } finally {
      await pool.end();
    }
  });

  it("behind a pooler that loses prepared statements, reruns the statement unprepared once and stops preparing", async () => {
    const name = db.table("lost_preparation");
    const { pool, counts } = countingPool();
    try {
      // What PgBouncer in transaction mode answers a named statement it sent to another server connection.
      let lost = 0;
      const pooler = wrappedPool(pool, (query) => (statement, ...rest) => {
        const prepared =
          typeof statement === "object" && statement !== null ? (statement as { name?: string }).name : "";
        if (prepared) {
          lost += 1;
          return Promise.reject(
            Object.assign(new Error(`prepared statement "${prepared}" does not exist`), { code: "26000" }),
          );
        }
        return query(statement, ...rest);
      });
      const storage = new PostgresStorage<number>({ client: pooler, tableName: name, retry: false });
      await storage.write("k", 1);
      for (let i = 0; i < 10; i += 1) await storage.write(`k${i}`, i);
      expect(await storage.read("k7")).toBe(7);
      expect(lost).toBe(1);
      expect(counts.opened).toBe(1);
      // A storage created later on the same client (one per request, say) starts unprepared.
      await new PostgresStorage<number>({ client: pooler, tableName: name }).read("k1");
      expect(lost).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it.skipIf(inject("backend") === "pglite")(
    "a connection lost while checked out is discarded, the statement retried, and nothing crashes",
    async () => {
      const name = db.table("lost_checked_out");
      const { pool, counts } = countingPool();
      pool.on("error", () => {});
      const locker = new pg.Client({ connectionString: databaseUrl() });
      await locker.connect();
      try {
        const storage = new PostgresStorage<number>({ client: pool, tableName: name, retry: { baseDelayMs: 50 } });
        await storage.write("k", 1);
        // The read waits on a lock, checked out, until its backend is terminated under it.
        await locker.query(`BEGIN; LOCK TABLE "${name}" IN ACCESS EXCLUSIVE MODE`);
        const reading = storage.read("k");
        let waiting: unknown[] = [];
        while (waiting.length === 0) {
          await sleep(10);
          waiting = await db.admin(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
            [`%${name}%`],
          );
        }
        await db.admin(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
          [`%${name}%`],
        );
        await locker.query("COMMIT");
        expect(await reading).toBe(1);
        expect(counts.opened).toBe(2);
        expect(pool.totalCount).toBe(1);
      } finally {
        await locker.end();
        await pool.end();
      }
    },
  );

  it.skipIf(inject("backend") === "pglite")(
    "a connection lost while it waits, checked out, for the table's creation is discarded, and nothing crashes",
    async () => {
      const name = db.table("lost_while_waiting");
      const applicationName = `waiting-${process.pid}`;
      const { pool, counts } = countingPool(4, applicationName);
      pool.on("error", () => {});
      const creator = new pg.Client({ connectionString: databaseUrl() });
      await creator.connect();
      try {
        const storage = new PostgresStorage<number>({ client: pool, tableName: name, retry: { baseDelayMs: 50 } });
        // Another process is creating the table: the storage's own creation waits for it to commit or roll back.
        await creator.query(`BEGIN; CREATE TABLE "${name}" (key text PRIMARY KEY)`);
        const first = storage.write("a", 1);
        await until(async () => (await activity(applicationName, "active")).length === 1);
        // A second write waits for the first one's creation, holding its connection idle: cut that one.
        const second = storage.write("b", 2);
        await until(async () => (await activity(applicationName, "idle")).length === 1);
        await db.admin(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'",
          [applicationName],
        );
        await sleep(50);
        await creator.query("ROLLBACK");
        await Promise.all([first, second]);
        expect([await storage.read("a"), await storage.read("b")]).toStrictEqual([1, 2]);
        // The cut connection left the pool: every connection it holds has a live backend.
        expect(counts.opened).toBe(2);
        expect((await activity(applicationName, "idle")).length).toBe(pool.totalCount);
      } finally {
        await creator.end();
        await pool.end();
      }

      async function activity(application: string, state: string) {
        return db.admin("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = $2", [
          application,
          state,
        ]);
      }
      async function until(condition: () => Promise<boolean>) {
        while (!(await condition())) await sleep(10);
      }
    },
  );

  it("prepare: false never names a statement", async () => {
    const { pool, counts } = countingPool();
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: db.table("unprepared"), prepare: false });
      await storage.write("k", 1);
      await storage.read("k");
      await storage.delete("k");
      expect(counts.named).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
