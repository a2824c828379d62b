import pg from "pg";
import postgres from "postgres";
import { describe, expect, inject, it } from "vitest";
import { PostgresStorage } from "../src/index.js";
import { connectClients, databaseUrl } from "./support/clients.js";
import { useTables } from "./support/fixture.js";

describe("separate processes creating one table at once", () => {
  const { admin, table } = useTables();

  // Each round is a fresh table, so every round races on creation again.
  it.each([1, 2, 3, 4, 5])("20 storages on 20 pg connections all write their first row (round %i)", async () => {
    const name = table("race");
    const clients = await connectClients(20);
    try {
      const storages = clients.map((client) => new PostgresStorage({ client, tableName: name }));
      const results = await Promise.allSettled(storages.map((storage, i) => storage.write(`user:${i}`, { i })));
      expect(results.filter((r) => r.status === "rejected")).toStrictEqual([]);
      const rows = await admin(`SELECT key, value->>'i' AS i FROM "${name}" ORDER BY key`);
      expect(rows).toHaveLength(20);
      for (const row of rows) expect(row.key).toBe(`user:${String(row.i)}`);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });

  // PGlite's socket server multiplexes connections onto one session message by
  // message; two postgres.js connections whose statements fail at once stall it.
  // There is no cross-process race on one session anyway, so this runs on a server.
  it.skipIf(inject("backend") === "pglite")(
    "20 storages on 20 postgres.js connections all write their first row",
    async () => {
      const name = table("race_pgjs");
      const sqls = Array.from({ length: 20 }, () => postgres(databaseUrl(), { max: 1, onnotice: () => {} }));
      try {
        const storages = sqls.map((client) => new PostgresStorage({ client, tableName: name }));
        await Promise.all(storages.map((storage, i) => storage.write(String(i), i)));
        const [row] = await admin(`SELECT count(*)::int AS n FROM "${name}"`);
        expect(row?.n).toBe(20);
      } finally {
        await Promise.all(sqls.map((sql) => sql.end()));
      }
    },
  );

  it("one storage creates the table once for many concurrent first writes", async () => {
    const name = table("singleflight");
    const statements: string[] = [];
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 10 });
    try {
      const client = { query: (text: string, params: unknown[]) => (statements.push(text), pool.query(text, params)) };
      const storage = new PostgresStorage({ client, tableName: name });
      await Promise.all(Array.from({ length: 10 }, (_, i) => storage.write(String(i), i)));
      expect(statements.filter((text) => text.startsWith("CREATE TABLE"))).toHaveLength(1);
      const [row] = await admin(`SELECT count(*)::int AS n FROM "${name}"`);
      expect(row?.n).toBe(10);
    } finally {
      await pool.end();
    }
  });
});
