import pg from "pg";
import postgres from "postgres";
import { describe, expect, inject, it } from "vitest";
import { PostgresStorage } from "../src/index.js";
import { connectClients, databaseUrl } from "./support/clients.js";
import { useTables } from "./support/fixture.js";

describe("separate processes creating one table at once", () => {
  const { admin, table, schema } = useTables();

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

  // What another process's concurrent CREATE … IF NOT EXISTS can raise: each means the table (or schema) is there.
  it.each([
    ["42P07", "CREATE TABLE", "table"],
    ["42710", "CREATE TABLE", "table"],
    ["23505", "CREATE TABLE", "table"],
    ["42P06", "CREATE SCHEMA", "schema.table"],
    ["42P07", "CREATE TABLE", "schema.table"],
  ])("a %s from %s, when another creator won the race, counts as created (%s)", async (code, failing, shape) => {
    const name = shape === "table" ? table("lost_race") : `${schema("lost_race")}.sessions`;
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    const raised: string[] = [];
    let lost = false;
    try {
      const client = {
        async query(text: string, params: unknown[]) {
          const result = await pool.query(text, params);
          // The DDL ran, as the winner's did; this creator hears the loser's error, and the same DDL run again
          // (IF NOT EXISTS) finds what the winner created.
          if (text.startsWith(failing)) {
            lost = !lost;
            if (lost) {
              raised.push(code);
              throw Object.assign(new Error(`duplicate (${code})`), { code });
            }
          }
          return result;
        },
      };
      const storage = new PostgresStorage<number>({ client, tableName: name, retry: false });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
      await storage.createTable();
      // createTable() runs the DDL again, except CREATE SCHEMA: the table's own CREATE finds the schema there.
      expect(raised).toStrictEqual(failing === "CREATE SCHEMA" ? [code] : [code, code]);
    } finally {
      await pool.end();
    }
  });

  it("any other error of the DDL fails the write, as a failure to create the table", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    try {
      const client = {
        async query(text: string, params: unknown[]) {
          if (text.startsWith("CREATE TABLE")) throw Object.assign(new Error("permission denied"), { code: "42501" });
          return pool.query(text, params);
        },
      };
      const storage = new PostgresStorage<number>({ client, tableName: table("ddl_refused"), retry: false });
      await expect(storage.write("k", 1)).rejects.toMatchObject({
        code: "42501",
        operation: "write",
        key: "k",
      });
    } finally {
      await pool.end();
    }
  });

  it("on a client that pipelines (postgres.js, Bun), sends nothing while the table is being created", async () => {
    // A statement pipelined behind the CREATE, as Parse/Describe/Flush without a Sync, loses its answer behind
    // PgBouncer in transaction mode and never settles (pgbouncer/pgbouncer#759): it must wait for the creation.
    const name = table("pipelined_create");
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 8 });
    const log: string[] = [];
    let creating = false;
    try {
      const client = {
        async unsafe(text: string, params: unknown[]) {
          const kind = text.split(" ")[0] ?? "";
          log.push(creating ? `${kind} during CREATE` : kind);
          if (!text.startsWith("CREATE TABLE")) return (await pool.query(text, params)).rows;
          creating = true;
          await new Promise((resolve) => setTimeout(resolve, 50));
          const { rows } = await pool.query(text, params);
          creating = false;
          return rows;
        },
      };
      const storage = new PostgresStorage<number>({ client, tableName: name, retry: false });
      const first = storage.write("0", 0);
      await new Promise((resolve) => setTimeout(resolve, 20)); // the first write is creating the table
      await Promise.all([first, ...Array.from({ length: 8 }, (_, i) => storage.write(String(i + 1), i + 1))]);
      expect(log.filter((entry) => entry.endsWith("during CREATE"))).toStrictEqual([]);
      expect(log.filter((entry) => entry === "CREATE")).toHaveLength(1);
      const [row] = await admin(`SELECT count(*)::int AS n FROM "${name}"`);
      expect(row?.n).toBe(9);
    } finally {
      await pool.end();
    }
  });

  it.each([
    ["once", false],
    ["again only if the table was dropped in between", true],
  ])(
    "one storage creates the table %s when a write's missing-table answer arrives after the creation",
    async (_label, dropped) => {
      // Write A's statement fails, A creates the table and runs again; write B's statement ran
      // before the table existed, and its "no such table" is delivered only once A is done
      // (and, in the second case, another process dropped the table meanwhile).
      const name = table("late_answer");
      const statements: string[] = [];
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
      const signal = () => {
        let resolve!: () => void;
        const promise = new Promise<void>((done) => {
          resolve = done;
        });
        return { promise, resolve, settled: false };
      };
      const bFailed = signal();
      const aDone = signal();
      try {
        const client = {
          async query(text: string, params: unknown[]) {
            statements.push(text);
            if (text.startsWith("CREATE TABLE")) await bFailed.promise;
            if (!text.startsWith("INSERT")) return pool.query(text, params);
            try {
              const result = await pool.query(text, params);
              if (params[0] === "a") aDone.resolve();
              return result;
            } catch (error) {
              if (params[0] === "b" && !aDone.settled) {
                bFailed.resolve();
                await aDone.promise;
                aDone.settled = true;
                if (dropped) await admin(`DROP TABLE "${name}"`);
              }
              throw error;
            }
          },
        };
        const storage = new PostgresStorage({ client, tableName: name, retry: false });
        await Promise.all([storage.write("a", 1), storage.write("b", 2)]);
        expect(statements.filter((text) => text.startsWith("CREATE TABLE"))).toHaveLength(dropped ? 2 : 1);
        expect(statements.filter((text) => text.startsWith("INSERT"))).toHaveLength(dropped ? 5 : 4);
        const rows = await admin(`SELECT key, value::text AS value FROM "${name}" ORDER BY key`);
        expect(rows).toStrictEqual([...(dropped ? [] : [{ key: "a", value: "1" }]), { key: "b", value: "2" }]);
      } finally {
        await pool.end();
      }
    },
  );
});
