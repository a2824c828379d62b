import pg from "pg";
import { describe, expect, it } from "vitest";
import { PostgresStorage } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { useFixture } from "./support/fixture.js";

/** A pg Pool that counts the connections it opens and the statements it sends, named (prepared) or not. */
function countingPool(max = 4) {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max });
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
      const pooler = {
        idleCount: 0,
        totalCount: 0,
        query: (text: string, params: unknown[]) => pool.query(text, params),
        async connect() {
          const connection = await pool.connect();
          return {
            query: (statement: string | { name?: string }, ...rest: unknown[]) => {
              if (typeof statement === "object" && statement.name) {
                lost += 1;
                return Promise.reject(Object.assign(new Error(`prepared statement "${statement.name}" does not exist`), { code: "26000" }));
              }
              return (connection.query as (...args: unknown[]) => Promise<unknown>)(statement, ...rest);
            },
            release: (error?: Error | boolean) => connection.release(error),
          };
        },
      };
      const storage = new PostgresStorage<number>({ client: pooler, tableName: name, retry: false });
      await storage.write("k", 1);
      for (let i = 0; i < 10; i += 1) await storage.write(`k${i}`, i);
      expect(await storage.read("k7")).toBe(7);
      expect(lost).toBe(1);
      expect(counts.opened).toBe(1);
    } finally {
      await pool.end();
    }
  });

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
