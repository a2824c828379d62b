import { createServer, type Server, type Socket } from "node:net";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  PostgresStorage,
  StorageOptionError,
  type OperationEvent,
  type PostgresClient,
  type QueryParameter,
  type StatementEvent,
  type StorageEvent,
} from "../src/index.js";
import { statementsFor } from "../src/statements.js";
import { clientKinds, databaseUrl } from "./support/clients.js";
import { collect, useTables } from "./support/fixture.js";
import { rejection } from "./support/rejections.js";
import { wrappedPool } from "./support/wrapped-pool.js";

// What the mutation run of the driver (npm run mutate:database) found no test of: a storage made inside the test on
// each kind of client (the conformance suite makes its storages before its tests), what an observed storage says
// of prepared statements and table creation, results of the wrong shape, clients refused, a pool whose connections
// fail before any statement is sent, and which failures are in doubt. Every test runs on a real database.

const pglite = inject("backend") === "pglite";

/** Collects a storage's events. */
function recorder() {
  const events: StorageEvent[] = [];
  return {
    onEvent: (event: StorageEvent) => {
      events.push(event);
    },
    events,
    operations: () => events.filter((event): event is OperationEvent => event.kind === "operation"),
    statements: () => events.filter((event): event is StatementEvent => event.kind === "statement"),
  };
}

describe("driver edges", () => {
  const tables = useTables();
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
  });
  afterAll(async () => {
    await pool.end();
  });

  describe("every kind of client, given to a storage made in the test", () => {
    // Clients that prepare named statements: pg's, and postgres.js.
    const preparing = new Set(["pg Pool", "pg Client", "postgres.js"]);
    // PGlite in its own process takes seconds to start; the query(text, params) kind takes the same path.
    for (const kind of clientKinds.filter((kind) => !kind.name.startsWith("PGlite"))) {
      it(`${kind.name}: round-trips, and prepares its statements only where the client can`, async () => {
        const open = await kind.open();
        try {
          const tableName = tables.table("kinds");
          const observed = recorder();
          const storage = new PostgresStorage<{ n: number; m?: number }>({
            client: open.client,
            tableName,
            onEvent: observed.onEvent,
          });
          await storage.write("k", { n: 1 });
          expect(await storage.read("k")).toStrictEqual({ n: 1 });
          expect(await storage.update("k", { m: 2 })).toStrictEqual({ n: 1, m: 2 });
          expect(await storage.has("k")).toBe(true);
          expect(await collect(storage.readAllEntries())).toStrictEqual([["k", { n: 1, m: 2 }]]);
          await storage.delete("k");
          expect(await storage.read("k")).toBeUndefined();
          const sent = observed.statements();
          const created = sent.filter((event) => event.statement === "CREATE");
          expect(created.map(({ prepared, outcome }) => ({ prepared, outcome }))).toStrictEqual([
            { prepared: false, outcome: "ok" },
          ]);
          const rest = sent.filter((event) => event.statement !== "CREATE");
          expect(rest.length).toBeGreaterThanOrEqual(8);
          expect(new Set(rest.map((event) => event.prepared))).toStrictEqual(new Set([preparing.has(kind.name)]));
          // Unobserved, the same.
          const plain = new PostgresStorage<number>({ client: open.client, tableName: tables.table("kinds_plain") });
          await plain.write("k", 7);
          expect(await plain.read("k")).toBe(7);
          expect(await collect(plain.readAllKeys())).toStrictEqual(["k"]);
        } finally {
          await open.close();
        }
      });
    }

    it("prepare: false sends nothing prepared, observed or not", async () => {
      const observed = recorder();
      const storage = new PostgresStorage<number>({
        client: pool,
        tableName: tables.table("unprepared_opt"),
        prepare: false,
        onEvent: observed.onEvent,
      });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
      expect(observed.statements().map((event) => event.prepared)).toStrictEqual([false, false, false, false]);
    });
  });

  it("a prepared statement deallocated on its connection: an observed storage reruns it unprepared, and says so", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      const tableName = tables.table("deallocated");
      const observed = recorder();
      const exporter = new InMemorySpanExporter();
      const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer("test");
      const storage = new PostgresStorage<number>({ client, tableName, onEvent: observed.onEvent, tracer });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
      await client.query(`DEALLOCATE "${statementsFor(`"${tableName}"`).read.name}"`);
      observed.events.length = 0;
      expect(await storage.read("k")).toBe(1);
      expect(await storage.has("k")).toBe(true);
      expect(observed.statements().map(({ prepared, outcome, code }) => ({ prepared, outcome, code }))).toStrictEqual([
        { prepared: true, outcome: "error", code: "26000" },
        { prepared: false, outcome: "ok", code: undefined },
        { prepared: false, outcome: "ok", code: undefined },
      ]);
      expect(observed.operations().map(({ operation, unprepared }) => ({ operation, unprepared }))).toStrictEqual([
        { operation: "read", unprepared: true },
        { operation: "has", unprepared: undefined },
      ]);
      const spans = exporter.getFinishedSpans().slice(-2);
      expect(spans.map((span) => span.attributes["db.grammy.unprepared"])).toStrictEqual([true, undefined]);
    } finally {
      await client.end();
    }
  });

  describe("table creation, observed", () => {
    it("in a schema that exists: one CREATE TABLE; in one that does not: the schema first", async () => {
      const space = tables.schema("create_space");
      await tables.admin(`CREATE SCHEMA "${space}"`);
      const summary = async (tableName: string) => {
        const observed = recorder();
        await new PostgresStorage<number>({ client: pool, tableName, onEvent: observed.onEvent }).write("k", 1);
        return {
          statements: observed.statements().map(({ statement, prepared, code }) => [statement, prepared, code]),
          created: observed.operations().map((event) => event.createdTable),
        };
      };
      expect(await summary(`${space}.sessions`)).toStrictEqual({
        statements: [
          ["INSERT", true, "42P01"],
          ["CREATE", false, undefined],
          ["INSERT", true, undefined],
        ],
        created: [true],
      });
      const missing = tables.schema("create_missing");
      expect(await summary(`${missing}.sessions`)).toStrictEqual({
        statements: [
          ["INSERT", true, "42P01"],
          ["CREATE", false, "3F000"],
          ["CREATE", false, undefined],
          ["CREATE", false, undefined],
          ["INSERT", true, undefined],
        ],
        created: [true],
      });
    });

    it("writes at once to a missing table: one of them creates it", async () => {
      const observed = recorder();
      const storage = new PostgresStorage<number>({
        client: pool,
        tableName: tables.table("create_concurrent"),
        onEvent: observed.onEvent,
      });
      await Promise.all(["a", "b", "c", "d"].map((key, i) => storage.write(key, i)));
      expect(await collect(storage.readAllKeys())).toStrictEqual(["a", "b", "c", "d"]);
      const writes = observed.operations().filter((event) => event.operation === "write");
      expect(writes).toHaveLength(4);
      expect(writes.filter((event) => event.createdTable === true)).toHaveLength(1);
    });

    // 42710 also says that another creator's row type won a race; here a domain of the table's name is in the way.
    it("createTable() and a write reject when a type of the table's name blocks the table, naming the clash", async () => {
      const tableName = tables.table("domain_clash");
      await pool.query(`CREATE DOMAIN "${tableName}" AS int`);
      try {
        const storage = new PostgresStorage<number>({ client: pool, tableName });
        expect(await rejection(storage.createTable())).toMatchObject({ code: "42710", operation: "createTable" });
        expect(await rejection(storage.write("k", 1))).toMatchObject({ code: "42710", operation: "write" });
        const found = await pool.query("SELECT to_regclass($1) AS found", [`"${tableName}"`]);
        expect(found.rows).toStrictEqual([{ found: null }]);
      } finally {
        await pool.query(`DROP DOMAIN IF EXISTS "${tableName}"`);
      }
    });

    // PostgreSQL refuses tables in pg_catalog even to a superuser; PGlite, single-user, creates them.
    it.skipIf(pglite)("a table the server refuses to create: createTable() and the write reject", async () => {
      const tableName = `pg_catalog.${tables.table("refused")}`;
      const observed = recorder();
      const storage = new PostgresStorage<number>({ client: pool, tableName, onEvent: observed.onEvent });
      const created = await rejection(storage.createTable());
      expect({ code: created.code, operation: created.operation }).toStrictEqual({
        code: "42501",
        operation: "createTable",
      });
      const written = await rejection(storage.write("k", 1));
      expect({ code: written.code, operation: written.operation, inDoubt: written.inDoubt }).toStrictEqual({
        code: "42501",
        operation: "write",
        inDoubt: false,
      });
      expect(written.message).toMatch(/^write of key "k" in table .* failed creating the table: /);
      expect(observed.statements().map(({ statement, prepared, code }) => [statement, prepared, code])).toStrictEqual([
        ["CREATE", false, "42501"],
        ["INSERT", true, "42P01"],
        ["CREATE", false, "42501"],
      ]);
    });
  });

  // The storage sends a pg-style client each statement with a callback. A wrapper written as an async function that
  // passes every argument on answers with a promise of pg's own answer to a callback: undefined, long before the rows.
  it("a pool whose connections' query() is an async wrapper passing the callback on: the rows come by the callback", async () => {
    const wrapping = wrappedPool(
      pool,
      (query) =>
        async (...args) =>
          query(...args),
    );
    const storage = new PostgresStorage<{ n: number }>({ client: wrapping, tableName: tables.table("async_wrapper") });
    await storage.write("k", { n: 1 });
    expect(await storage.read("k")).toStrictEqual({ n: 1 });
    expect(await storage.update("k", { n: 2 })).toStrictEqual({ n: 2 });
    expect(await storage.has("k")).toBe(true);
  });

  // pg copies a config's own properties on every query(): a prepared statement's config has none of its own.
  it("sends a pg-style client a prepared statement's name and text inherited, its values beside the config", async () => {
    const seen: { own: string[]; name: unknown; text: unknown; values: unknown }[] = [];
    const recording = wrappedPool(pool, (query) => (config, ...rest) => {
      if (typeof config === "object" && config !== null) {
        const { name, text } = config as { name?: unknown; text?: unknown };
        seen.push({ own: Object.keys(config), name, text, values: rest[0] });
      }
      return query(config, ...rest);
    });
    const storage = new PostgresStorage<{ n: number }>({ client: recording, tableName: tables.table("config_shape") });
    await storage.write("k", { n: 1 });
    expect(await storage.read("k")).toStrictEqual({ n: 1 });
    const read = seen.find((entry) => String(entry.text).startsWith("SELECT value::text"));
    expect(read).toMatchObject({ own: [], values: ["k"] });
    expect(read?.name).toMatch(/^gps_/);
  });

  describe("what a creation leaves behind", () => {
    /** A `query(text, params)` client on the pool (it pipelines: nothing is checked out), with `before` run first. */
    const fronted = (before: (text: string) => Promise<void> | void): PostgresClient => ({
      query: async (text: string, params: QueryParameter[]) => {
        await before(text);
        return pool.query(text, params);
      },
    });

    it("a statement that still finds no table once it is created fails, and creates it once", async () => {
      const tableName = tables.table("still_missing");
      let creates = 0;
      const client = fronted((text) => {
        if (text.startsWith("CREATE TABLE")) creates += 1;
        if (text.startsWith("INSERT"))
          throw Object.assign(new Error(`relation "${tableName}" does not exist`), { code: "42P01" });
      });
      const storage = new PostgresStorage<number>({ client, tableName, retry: false });
      expect(await rejection(storage.write("k", 1))).toMatchObject({ code: "42P01", operation: "write" });
      expect(creates).toBe(1);
    });

    it("a statement that waited for a creation that failed is sent all the same", async () => {
      const tableName = tables.table("failed_creation_waiter");
      let letCreationFail = () => {};
      const held = new Promise<void>((resolve) => {
        letCreationFail = resolve;
      });
      const sent: string[] = [];
      const client = fronted(async (text) => {
        sent.push(text.slice(0, text.indexOf(" ")));
        if (!text.startsWith("CREATE TABLE")) return;
        await held;
        throw Object.assign(new Error("permission denied for schema public"), { code: "42501" });
      });
      const storage = new PostgresStorage<number>({ client, tableName, retry: false });
      const write = rejection(storage.write("a", 1));
      while (!sent.includes("CREATE")) await new Promise((resolve) => setTimeout(resolve, 1));
      const read = storage.read("b");
      letCreationFail();
      expect(await write).toMatchObject({ code: "42501", operation: "write" });
      expect(await read).toBeUndefined();
      expect(sent).toStrictEqual(["INSERT", "CREATE", "SELECT"]);
    });

    // PostgreSQL refuses tables in pg_catalog even to a superuser; PGlite, single-user, creates them.
    it.skipIf(pglite)("createTable() refused gives its pooled connection back to be used again", async () => {
      const single = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
      try {
        const connection = await single.connect();
        connection.release();
        const tableName = `pg_catalog.${tables.table("refused_kept")}`;
        const storage = new PostgresStorage<number>({ client: single, tableName });
        expect(await rejection(storage.createTable())).toMatchObject({ code: "42501" });
        const again = await single.connect();
        try {
          expect(again).toBe(connection);
        } finally {
          again.release();
        }
      } finally {
        await single.end();
      }
    });
  });

  describe("results of the wrong shape are refused, not misread", () => {
    /** A client that runs each statement on the pool and hands back `reshape` of pg's result. */
    const reshaping = (reshape: (result: pg.QueryResult) => unknown): PostgresClient => ({
      query: async (text: string, params: QueryParameter[]) => reshape(await pool.query(text, params)) as never,
    });

    it("neither rows nor { rows }: a write that ran is in doubt", async () => {
      const tableName = tables.table("shape_none");
      const direct = new PostgresStorage<number>({ client: pool, tableName });
      await direct.write("k", 1);
      for (const [n, reshape] of [
        (result: pg.QueryResult) => ({ count: result.rowCount }),
        () => undefined,
        () => null,
      ].entries()) {
        const storage = new PostgresStorage<number>({ client: reshaping(reshape), tableName });
        const error = await rejection(storage.read("k"));
        expect(error.message).toMatch(/client\.query\(\) resolved to neither rows nor \{ rows \}/);
        expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
          operation: "read",
          inDoubt: false,
        });
        const failed = await rejection(storage.write("k", n + 2));
        expect({ operation: failed.operation, inDoubt: failed.inDoubt }).toStrictEqual({
          operation: "write",
          inDoubt: true,
        });
        expect(failed.message).toMatch(
          /Its answer could not be read, so it may have taken effect; read the key to see$/,
        );
        expect(await direct.read("k")).toBe(n + 2);
      }
    });

    it("a value column that is not text: an update() merged in the database is in doubt", async () => {
      const tableName = tables.table("shape_parsed");
      const direct = new PostgresStorage<{ n: number; m?: number }>({ client: pool, tableName });
      await direct.write("k", { n: 1 });
      const storage = new PostgresStorage<{ n: number; m?: number }>({
        client: reshaping((result) => result.rows.map((row) => ({ ...row, value: JSON.parse(row.value as string) }))),
        tableName,
      });
      const error = await rejection(storage.read("k"));
      expect(error.message).toMatch(/the client returned column value as object, not text/);
      const failed = await rejection(storage.update("k", { m: 2 }));
      expect({ operation: failed.operation, inDoubt: failed.inDoubt }).toStrictEqual({
        operation: "update",
        inDoubt: true,
      });
      expect(failed.message).toMatch(
        /the client returned column value as object, not text; pass it without result transforms\. Its answer could not be read, so it may have taken effect and was not retried; read the key to see$/,
      );
      expect(await direct.read("k")).toStrictEqual({ n: 1, m: 2 });
    });
  });

  it("what is no client is refused, saying what it got", () => {
    const refusal = (client: unknown) => {
      try {
        new PostgresStorage({ client: client as PostgresClient });
      } catch (error) {
        expect(error).toBeInstanceOf(StorageOptionError);
        expect((error as StorageOptionError).option).toBe("client");
        return (error as Error).message;
      }
      return expect.fail("did not throw");
    };
    expect(refusal(null)).toMatch(/^client must be a pg or Neon Pool or Client, .* got null$/);
    expect(refusal(42)).toMatch(/ got number$/);
    expect(refusal({ connect: () => {} })).toMatch(/ got object$/);
    expect(refusal(undefined)).toMatch(/ got undefined$/);
    // Bun's SQL on another database.
    expect(refusal({ unsafe: () => [], options: { adapter: "mysql" } })).toBe(
      "client is Bun's SQL on mysql; it must be on PostgreSQL (a postgres:// URL)",
    );
  });

  describe("a pool whose connections close before the handshake: nothing was sent", () => {
    // A local TCP server that accepts and hangs up at once, as a proxy whose database is down does.
    let server: Server;
    let port = 0;
    let connections = 0;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      server = createServer((socket) => {
        connections += 1;
        sockets.add(socket);
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it("every operation, update() too, is tried as often as the policy says, and none is in doubt", async () => {
      const closing = new pg.Pool({ host: "127.0.0.1", port, user: "postgres", database: "test", max: 1 });
      closing.on("error", () => {});
      try {
        const storage = new PostgresStorage<{ n: number }>({
          client: closing,
          tableName: tables.table("closing"),
          retry: { attempts: 3, baseDelayMs: 0 },
        });
        for (const [operation, call] of [
          ["update", () => storage.update("k", { n: 1 })],
          ["write", () => storage.write("k", { n: 1 })],
          ["read", () => storage.read("k")],
          ["createTable", () => storage.createTable()],
        ] as const) {
          connections = 0;
          const error = await rejection(call());
          expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({ operation, inDoubt: false });
          expect(error.message).toMatch(/Connection terminated unexpectedly/);
          expect(connections).toBe(3);
        }
      } finally {
        await closing.end();
      }
    });
  });

  // A read the client stopped waiting for may still run on the server, but changes nothing: never in doubt.
  it.skipIf(pglite)("reads that time out on the client are not in doubt; a write is", async () => {
    const tableName = tables.table("read_timeout");
    await new PostgresStorage<number>({ client: pool, tableName }).write("k", 1);
    const holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
    const impatient = new pg.Pool({ connectionString: databaseUrl(), max: 2, query_timeout: 200 });
    impatient.on("error", () => {});
    try {
      await holder.query("BEGIN");
      await holder.query(`LOCK TABLE "${tableName}" IN ACCESS EXCLUSIVE MODE`);
      const storage = new PostgresStorage<number>({ client: impatient, tableName, retry: false });
      for (const [operation, call] of [
        ["read", () => storage.read("k")],
        ["has", () => storage.has("k")],
        ["readAll", () => collect(storage.readAllKeys())],
        ["write", () => storage.write("k", 2)],
      ] as const) {
        const error = await rejection(call());
        expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
          operation,
          inDoubt: operation === "write",
        });
      }
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
      await impatient.end();
    }
  });
});
