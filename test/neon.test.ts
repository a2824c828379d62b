import { Pool, neon, NeonDbError } from "@neondatabase/serverless";
import { db, sql as vercelSql } from "@vercel/postgres";
import { describe, expect, inject, it } from "vitest";
import { PostgresStorage, PostgresStorageError } from "../src/index.js";
import { databaseUrl, tableExists } from "./support/clients.js";
import { useTables } from "./support/fixture.js";
import { useLocalNeon } from "./support/neon-clients.js";

describe("Neon through the local endpoint", () => {
  const local = useLocalNeon();
  const { admin, table } = useTables();

  describe("neon() HTTP: one request per operation", () => {
    const requestsFor = async (operation: () => Promise<unknown>) => {
      const before = local.endpoint.stats.httpRequests;
      await operation();
      return local.endpoint.stats.httpRequests - before;
    };

    it("spends one request on a read of a missing table, and creates nothing", async () => {
      const storage = new PostgresStorage({ client: neon(databaseUrl()), tableName: table("neon_missing") });
      expect(await requestsFor(() => storage.read("k"))).toBe(1);
      expect(await tableExists(admin, storage.tableName)).toBe(false);
    });

    it("spends three on the first write to a missing table (fails, creates, retries), one per warm operation", async () => {
      const storage = new PostgresStorage({ client: neon(databaseUrl()), tableName: table("neon_count") });
      expect(await requestsFor(() => storage.write("k", { n: 1 }))).toBe(3);
      expect(await requestsFor(() => storage.write("k", { n: 2 }))).toBe(1);
      expect(await requestsFor(() => storage.read("k"))).toBe(1);
      expect(await requestsFor(() => storage.has("k"))).toBe(1);
      expect(await requestsFor(() => storage.delete("k"))).toBe(1);
      expect(await storage.read("k")).toBeUndefined();
    });
  });

  describe("driver errors keep their SQLSTATE", () => {
    it("over HTTP: NeonDbError becomes PostgresStorageError with the same code", async () => {
      const name = table("neon_shape");
      await admin(`CREATE TABLE "${name}" (key text PRIMARY KEY, other jsonb)`);
      const error = await new PostgresStorage({ client: neon(databaseUrl()), tableName: name })
        .read("k")
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect((error as PostgresStorageError).code).toBe("42703");
      expect((error as PostgresStorageError).cause).toBeInstanceOf(NeonDbError);
    });

    it("over WebSocket: pg's DatabaseError becomes PostgresStorageError with the same code", async () => {
      const pool = new Pool({ connectionString: databaseUrl() });
      try {
        const storage = new PostgresStorage({ client: pool, tableName: table("neon_ws_nocreate"), createTable: false });
        const error = await storage.write("k", 1).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect((error as PostgresStorageError).code).toBe("42P01");
      } finally {
        await pool.end();
      }
    });

    it("an unreachable database (HTTP 502 from the endpoint) rejects the read, never answers undefined", async () => {
      const storage = new PostgresStorage({ client: neon("postgres://postgres@127.0.0.1:1/test") });
      const error = await storage.read("k").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect((error as Error).message).toMatch(/HTTP status 502/);
    });
  });

  describe("a Neon Pool created and ended inside each request, as on Workers", () => {
    it("leaves no connection open after 100 requests in a row", async () => {
      const name = table("neon_per_request");
      const applicationName = `gps_per_request_${process.pid}`;
      const url = new URL(databaseUrl());
      url.searchParams.set("application_name", applicationName);
      const opened = local.endpoint.stats.tunnelsOpened;
      for (let request = 0; request < 100; request += 1) {
        const pool = new Pool({ connectionString: url.href });
        const storage = new PostgresStorage<{ count: number }>({ client: pool, tableName: name });
        const session = (await storage.read("chat")) ?? { count: 0 };
        await storage.write("chat", { count: session.count + 1 });
        await pool.end(); // on Workers: ctx.waitUntil(pool.end())
      }
      expect(await new PostgresStorage({ client: neon(databaseUrl()), tableName: name }).read("chat")).toStrictEqual({
        count: 100,
      });
      expect(local.endpoint.stats.tunnelsOpened - opened).toBeGreaterThanOrEqual(100);
      await expect.poll(() => local.endpoint.stats.tunnelsOpen, { timeout: 5_000 }).toBe(0);
      if (inject("backend") === "postgres") {
        const count = async () =>
          (
            await admin("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
              applicationName,
            ])
          )[0]?.n;
        await expect.poll(count, { timeout: 5_000 }).toBe(0);
      }
    });
  });

  describe("the endpoint speaks Neon's protocol", () => {
    it("runs a batch as one transaction, and rolls it back when a statement fails", async () => {
      const name = table("neon_batch");
      const sql = neon(databaseUrl());
      await sql.query(`CREATE TABLE "${name}" (n int PRIMARY KEY)`);
      const results = await sql.transaction([
        sql.query(`INSERT INTO "${name}" VALUES ($1) RETURNING n`, [1]),
        sql.query(`SELECT count(*)::int AS c FROM "${name}"`),
      ]);
      expect(results).toStrictEqual([[{ n: 1 }], [{ c: 1 }]]);
      await expect(
        sql.transaction([sql.query(`INSERT INTO "${name}" VALUES (2)`), sql.query(`INSERT INTO "${name}" VALUES (1)`)]),
      ).rejects.toMatchObject({ code: "23505" });
      expect(await sql.query(`SELECT n FROM "${name}" ORDER BY n`)).toStrictEqual([{ n: 1 }]);
    });

    it("returns array mode and full results with Postgres's types parsed by the driver", async () => {
      const sql = neon(databaseUrl(), { arrayMode: true, fullResults: true });
      const result = await sql.query(
        "SELECT 1::int AS one, 'x'::text AS x, '{\"a\":1}'::jsonb AS j, NULL::text AS nothing",
      );
      expect(result.rows).toStrictEqual([[1, "x", { a: 1 }, null]]);
      expect(result.fields.map((field) => field.name)).toStrictEqual(["one", "x", "j", "nothing"]);
    });

    it("sends Postgres's error fields with HTTP 400", async () => {
      const error = (await neon(databaseUrl())
        .query("SELECT nope FROM (SELECT 1) AS t")
        .catch((e: unknown) => e)) as NeonDbError;
      expect(error).toBeInstanceOf(NeonDbError);
      expect(error.code).toBe("42703");
      expect(error.position).toBe("8");
      expect(error.severity).toBe("ERROR");
    });

    it("refuses more than one statement per query, as Neon does", async () => {
      await expect(neon(databaseUrl()).query("SELECT 1; SELECT 2")).rejects.toMatchObject({ code: "42601" });
    });

    it("reaches loopback databases only", async () => {
      await expect(neon("postgres://postgres@192.0.2.1:5432/test").query("SELECT 1")).rejects.toThrow(/loopback/);
    });
  });

  it("@vercel/postgres exports db as the same client as sql", () => {
    expect(db).toBe(vercelSql);
  });
});
