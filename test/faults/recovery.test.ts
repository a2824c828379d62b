import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { countStatements } from "../../dev/counting.js";
import { PostgresStorage, PostgresStorageError } from "../../src/index.js";
import { connectClients, databaseUrl } from "../support/clients.js";
import { useFixture } from "../support/fixture.js";
import { useProxiedPool } from "./proxied-pool.js";

type Value = Record<string, number>;
const retry = { attempts: 4, baseDelayMs: 10, maxDelayMs: 100 };

describe("recovering without restarting the process", () => {
  const db = useFixture();
  const proxied = useProxiedPool(4);

  /** Runs 300 writes-then-reads, calling `disrupt` before every 50th; answers what happened. */
  async function through(storage: PostgresStorage<Value>, disrupt: () => Promise<void> | void) {
    const outcomes: ("ok" | "failed")[] = [];
    for (let i = 0; i < 300; i += 1) {
      if (i % 50 === 25) await disrupt();
      try {
        await storage.write(`k${i % 7}`, { i });
        expect(await storage.read(`k${i % 7}`)).toStrictEqual({ i });
        outcomes.push("ok");
      } catch (error) {
        expect(error).toBeInstanceOf(PostgresStorageError);
        outcomes.push("failed");
      }
    }
    return outcomes;
  }

  it("survives every connection being cut, again and again", async () => {
    const table = db.table("recover_drop");
    const storage = new PostgresStorage<Value>({ client: proxied.pool, tableName: table, retry });
    const outcomes = await through(storage, () => proxied.proxy.dropAll());
    expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(295);
    expect(outcomes.slice(-20)).toStrictEqual(Array(20).fill("ok"));
  });

  it.skipIf(inject("backend") === "pglite")(
    "survives pg_terminate_backend of all its connections (what a server restart does to them)",
    async () => {
      const table = db.table("recover_terminate");
      const applicationName = `gps_terminate_${process.pid}`;
      const direct = new pg.Pool({ connectionString: databaseUrl(), application_name: applicationName, max: 4 });
      direct.on("error", () => {});
      try {
        const storage = new PostgresStorage<Value>({ client: direct, tableName: table, retry });
        let terminated = 0;
        const outcomes = await through(storage, async () => {
          const rows = await db.admin(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1",
            [applicationName],
          );
          terminated += rows.length;
        });
        expect(terminated).toBeGreaterThan(0);
        expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(295);
        expect(outcomes.slice(-20)).toStrictEqual(Array(20).fill("ok"));
      } finally {
        await direct.end();
      }
    },
  );

  it("rejects with PostgresStorageError while the server refuses connections, and works again after", async () => {
    const table = db.table("recover_refuse");
    const storage = new PostgresStorage<Value>({ client: proxied.pool, tableName: table, retry });
    await storage.write("k", { before: 1 });
    await proxied.proxy.refuse(true);
    proxied.proxy.dropAll();
    const error = await storage.read("k").catch((e: unknown) => e);
    await proxied.proxy.refuse(false);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect(await storage.read("k")).toStrictEqual({ before: 1 });
  });

  it("retries a refused connection until the server is back within the retry window", async () => {
    const table = db.table("recover_window");
    const storage = new PostgresStorage<Value>({
      client: proxied.pool,
      tableName: table,
      retry: { attempts: 6, baseDelayMs: 40, maxDelayMs: 200 },
    });
    await storage.write("k", { v: 1 });
    await proxied.proxy.refuse(true);
    proxied.proxy.dropAll();
    setTimeout(() => void proxied.proxy.refuse(false), 150);
    const started = performance.now();
    expect(await storage.read("k")).toStrictEqual({ v: 1 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(100); // it did wait for the server
  });

  it("adds latency without changing any answer", async () => {
    const table = db.table("recover_latency");
    const storage = new PostgresStorage<Value>({ client: proxied.pool, tableName: table, retry });
    proxied.proxy.settings.latencyMs = 30;
    const started = performance.now();
    await storage.write("k", { slow: 1 });
    expect(await storage.read("k")).toStrictEqual({ slow: 1 });
    proxied.proxy.settings.latencyMs = 0;
    expect(performance.now() - started).toBeGreaterThanOrEqual(60);
  });
});

describe("update() is never applied twice", () => {
  const db = useFixture();
  const proxied = useProxiedPool(1);

  it("is not retried when the connection breaks after it was sent, and says so", async () => {
    const table = db.table("update_once");
    await new PostgresStorage({ client: db.pool, tableName: table }).write("k", { a: 1 });
    const counted = countStatements(proxied.pool);
    const storage = new PostgresStorage<Value>({ client: counted.client, tableName: table, retry });
    await storage.read("k"); // a warm connection, so the next chunk is the update itself
    Object.assign(proxied.proxy.settings, { probability: 1, faults: ["drop-mid-response"] });
    const error = await storage.update("k", { b: 2 }).catch((e: unknown) => e);
    proxied.proxy.settings.probability = 0;
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/may have taken effect and was not retried/);
    expect(counted.statements.filter((text) => text.includes("json_each(EXCLUDED.value)"))).toHaveLength(1);
    expect(await new PostgresStorage<Value>({ client: db.pool, tableName: table }).read("k")).toStrictEqual({
      a: 1,
      b: 2,
    });
  });

  it("is retried when the connection was refused, since then it never ran", async () => {
    const table = db.table("update_refused");
    await new PostgresStorage({ client: db.pool, tableName: table }).write("k", { a: 1 });
    const storage = new PostgresStorage<Value>({
      client: proxied.pool,
      tableName: table,
      retry: { attempts: 6, baseDelayMs: 40, maxDelayMs: 200 },
    });
    await proxied.proxy.refuse(true);
    proxied.proxy.dropAll();
    setTimeout(() => void proxied.proxy.refuse(false), 120);
    expect(await storage.update("k", { c: 3 })).toStrictEqual({ a: 1, c: 3 });
  });
});

describe("cold starts racing to create the table", () => {
  const db = useFixture();

  it("50 storages on 50 connections doing their first write to a missing table at once all succeed", async () => {
    const table = db.table("cold_start_50");
    const clients = await connectClients(50);
    try {
      const results = await Promise.allSettled(
        clients.map((client, i) => new PostgresStorage({ client, tableName: table }).write(`chat:${i}`, { i })),
      );
      expect(results.filter((r) => r.status === "rejected")).toStrictEqual([]);
      expect(await db.admin(`SELECT count(*)::int AS n FROM "${table}"`)).toStrictEqual([{ n: 50 }]);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });
});
