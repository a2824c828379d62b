import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { z } from "zod";
import {
  PostgresStorage,
  createTableSql,
  encryptedCodec,
  migrateFromStoragePsqlSql,
  prefixKeys,
} from "../src/index.js";
import { statementsFor } from "../src/statements.js";
import { databaseUrl, tableExists } from "./support/clients.js";
import { collect, sleep, useFixture } from "./support/fixture.js";

// Plausible bugs that a hand-made mutation probe found the rest of the suite would miss (issue 20, item 5): each
// test here fails, deterministically, when its bug is put into the source, on PostgreSQL and on PGlite alike
// (but the two that need a statement kept waiting on another backend, which PGlite's one session cannot do; they
// say so). Each test names its bug in the report of issue 20; the source was mutated by hand to see it fail.

const pglite = inject("backend") === "pglite";

describe("mutation probe", () => {
  const db = useFixture();

  it("an overwrite moves updated_at forward", async () => {
    const name = db.table("probe_updated_at");
    const storage = new PostgresStorage<{ n: number }>({ client: db.pool, tableName: name });
    const updatedAt = async () =>
      ((await db.admin(`SELECT updated_at FROM "${name}" WHERE key = 'k'`))[0]?.updated_at as Date).getTime();
    await storage.write("k", { n: 1 });
    const first = await updatedAt();
    await sleep(20);
    await storage.write("k", { n: 2 });
    const second = await updatedAt();
    expect(second).toBeGreaterThan(first);
    await sleep(20);
    // A write-back of a changed value moves it too.
    const read = await storage.read("k");
    await storage.write("k", { n: (read?.n ?? 0) + 1 });
    expect(await updatedAt()).toBeGreaterThan(second);
  });

  describe("readAll* pages bytewise in a table whose key column has a collation other than C", () => {
    // Letters of both cases, digits and punctuation: ICU orders them differently from bytes ("B" < "a" in bytes,
    // "a" < "B" in ICU, and ICU ranks "-" and "_" apart from their code points).
    const alphabet = ["a", "B", "b", "A", "-", "_", "0", "Z", "~", "é"];
    const keysOf = (count: number, prefix: string) =>
      Array.from({ length: count }, (_, i) => {
        let key = "";
        for (let n = i + 7; key.length < 4; n = Math.floor(n / alphabet.length)) key += alphabet[n % alphabet.length];
        return `${prefix}${key}${i}`;
      });
    /** Bytewise order, which for UTF-8 is code point order. */
    const bytewise = (keys: string[]) =>
      [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));

    it("lists every key once, in bytewise order, across pages, with and without a prefix", async (context) => {
      // A collation of the server's that orders "a" before "B", which bytes do not (a server without one skips).
      const collations = await db.admin(
        "SELECT collname FROM pg_collation WHERE collname IN ('en-US-x-icu', 'und-x-icu', 'en_US.utf8', 'en_US') ORDER BY collname",
      );
      let collation: string | undefined;
      for (const row of collations) {
        const [order] = await db.admin(`SELECT 'a' < 'B' COLLATE "${row.collname as string}" AS differs`);
        if (order?.differs === true) collation ??= row.collname as string;
      }
      if (collation === undefined) return context.skip();
      const name = db.table("probe_collation");
      await db.admin(createTableSql(name));
      await db.admin(`ALTER TABLE "${name}" ALTER COLUMN key TYPE text COLLATE "${collation}"`);
      const plain = keysOf(1_100, "");
      const prefixed = keysOf(1_100, "app:");
      await db.admin(`INSERT INTO "${name}" (key, value) SELECT k, '1'::json FROM unnest($1::text[]) AS k`, [
        [...plain, ...prefixed],
      ]);
      // The two orders do differ in this table, or the test would show nothing.
      const collated = await db.admin(`SELECT key FROM "${name}" ORDER BY key`);
      expect(collated.map((row) => row.key)).not.toStrictEqual(bytewise([...plain, ...prefixed]));

      const all = new PostgresStorage<number>({ client: db.pool, tableName: name });
      expect(await collect(all.readAllKeys())).toStrictEqual(bytewise([...plain, ...prefixed]));
      const app = new PostgresStorage<number>({ client: db.pool, tableName: name, keyBuilder: prefixKeys("app") });
      const unprefixed = prefixed.map((key) => key.slice("app:".length));
      expect(await collect(app.readAllKeys())).toStrictEqual(bytewise(unprefixed));
      // Entries come 100 to a page.
      const entries = await collect(app.readAllEntries());
      expect(entries.map(([key]) => key)).toStrictEqual(bytewise(unprefixed));
      expect(new Set(entries.map(([key]) => key)).size).toBe(unprefixed.length);
    });
  });

  it("read(), has() and readAllKeys() of a missing table with createTable: false answer nothing, create nothing", async () => {
    const name = db.table("probe_missing");
    const storage = new PostgresStorage<number>({ client: db.pool, tableName: name, createTable: false });
    expect(await storage.read("k")).toBeUndefined();
    expect(await storage.has("k")).toBe(false);
    expect(await collect(storage.readAllKeys())).toStrictEqual([]);
    expect(await tableExists(db.admin, name)).toBe(false);
    // The default creates it only for a write, never for a read.
    const creating = new PostgresStorage<number>({ client: db.pool, tableName: name });
    expect(await creating.read("k")).toBeUndefined();
    expect(await creating.has("k")).toBe(false);
    expect(await tableExists(db.admin, name)).toBe(false);
  });

  it("the storage-psql migration keeps a prefix with a backslash, a quote and $, into a table in another schema", async () => {
    const from = db.table("probe_psql_from");
    const schema = db.table("probe_psql_schema");
    const to = `${schema}.sessions`;
    await db.admin(`CREATE TABLE "${from}" (key varchar NOT NULL PRIMARY KEY, value text)`);
    await db.admin(`INSERT INTO "${from}" (key, value) VALUES ('1', '{"n":1}'), ('-1001', '{"n":2}')`);
    try {
      const prefixes = ["a\\b", "it's $1\\n", "\\x41$$"];
      for (const prefix of prefixes) {
        await db.pool.query(migrateFromStoragePsqlSql({ from, to, keyBuilder: prefixKeys(prefix) }));
      }
      const stored = await db.admin(`SELECT key FROM "${schema}"."sessions" ORDER BY key COLLATE "C"`);
      expect(stored.map((row) => row.key)).toStrictEqual(
        prefixes.flatMap((prefix) => [`${prefix}:-1001`, `${prefix}:1`]).sort(),
      );
      for (const prefix of prefixes) {
        const storage = new PostgresStorage<{ n: number }>({
          client: db.pool,
          tableName: to,
          keyBuilder: prefixKeys(prefix),
        });
        expect(await collect(storage.readAllEntries())).toStrictEqual([
          ["-1001", { n: 2 }],
          ["1", { n: 1 }],
        ]);
      }
    } finally {
      await db.admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  describe("secret rotation", () => {
    const [oldSecret, newSecret] = ["the old secret, 32 characters or more", "the new secret, 32 characters or more"];

    it("a storage with [new, old] reads back what it wrote", async () => {
      const name = db.table("probe_rotation");
      const storage = new PostgresStorage<{ n: number }>({
        client: db.pool,
        tableName: name,
        codec: encryptedCodec({ secret: [newSecret, oldSecret] }),
      });
      await storage.write("k", { n: 1 });
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
    });

    it("values written with [old] read with [new, old], and with [old, new]", async () => {
      const name = db.table("probe_rotation_old");
      const before = new PostgresStorage<{ n: number }>({
        client: db.pool,
        tableName: name,
        codec: encryptedCodec({ secret: oldSecret }),
      });
      await before.write("k", { n: 7 });
      for (const secret of [
        [newSecret, oldSecret],
        [oldSecret, newSecret],
      ]) {
        const after = new PostgresStorage<{ n: number }>({
          client: db.pool,
          tableName: name,
          codec: encryptedCodec({ secret }),
        });
        expect(await after.read("k")).toStrictEqual({ n: 7 });
      }
    });
  });

  it("read() answers onInvalid's repair as the schema outputs it (unknown keys stripped), not the raw repair", async () => {
    const name = db.table("probe_repair");
    const Session = z.object({ step: z.string(), count: z.number().default(0) });
    const storage = new PostgresStorage({
      client: db.pool,
      tableName: name,
      schema: Session,
      onInvalid: ({ value }) => ({ step: "repaired", left: value }) as unknown as z.output<typeof Session>,
    });
    await db.admin(createTableSql(name));
    await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '{"stage": 1}')`);
    const read = await storage.read("k");
    expect(read).toStrictEqual({ step: "repaired", count: 0 });
    // update() decodes the stored value as read() does before it merges.
    expect(await storage.update("k", { step: "next" })).toStrictEqual({ step: "next", count: 0 });
  });

  describe("a connection that failed without a SQLSTATE, or with 57P01, is given back to the pool as broken", () => {
    /** A real pg Pool whose checked-out clients record what `release` is given. */
    function recordingPool(config: pg.PoolConfig) {
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2, ...config });
      pool.on("error", () => {});
      const releases: unknown[] = [];
      const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
      Object.assign(pool, {
        async connect() {
          const client = await connect();
          const release = client.release.bind(client);
          client.release = (broken?: Error | boolean) => {
            releases.push(broken);
            release(broken);
          };
          return client;
        },
      });
      return { pool, releases };
    }

    /** Holds `table` locked (on PostgreSQL) and a transaction open (which on PGlite holds every other connection). */
    async function blocking(table: string) {
      const locker = new pg.Client({ connectionString: databaseUrl() });
      await locker.connect();
      await locker.query(`BEGIN; LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
      return {
        async end() {
          await locker.query("COMMIT");
          await locker.end();
        },
      };
    }

    // PGlite serves one session: a transaction open on one connection holds every other's statements (its socket
    // server then stalls), and it has no backend to terminate; so no statement can be kept waiting and cut there.
    it.skipIf(pglite)("a query that timed out on the client (no SQLSTATE; not on PGlite)", async () => {
      const name = db.table("probe_timeout");
      await db.admin(createTableSql(name));
      await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '1')`);
      const { pool, releases } = recordingPool({ query_timeout: 500 });
      try {
        const storage = new PostgresStorage<number>({ client: pool, tableName: name, retry: false });
        const locker = await blocking(name);
        try {
          const error = await storage.read("k").then(
            () => undefined,
            (failure: unknown) => failure,
          );
          expect(error).toMatchObject({ code: undefined });
          expect(String((error as Error).cause)).toMatch(/timeout/i);
        } finally {
          await locker.end();
        }
        expect(releases).toHaveLength(1);
        expect(releases[0]).toBeTruthy();
      } finally {
        await pool.end();
      }
    });

    it.skipIf(pglite)("a backend terminated mid-query (57P01; not on PGlite)", async () => {
      const name = db.table("probe_terminated");
      const { pool, releases } = recordingPool({});
      try {
        await db.admin(createTableSql(name));
        await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '1')`);
        const storage = new PostgresStorage<number>({ client: pool, tableName: name, retry: false });
        const locker = await blocking(name);
        try {
          const reading = storage.read("k").then(
            () => undefined,
            (failure: unknown) => failure,
          );
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
          expect(await reading).toMatchObject({ code: "57P01" });
        } finally {
          await locker.end();
        }
        expect(releases).toHaveLength(1);
        expect(releases[0]).toBeTruthy();
      } finally {
        await pool.end();
      }
    });
  });

  it("read → delete → write: the object read, unchanged, leaves the delete alone; a new object with its value is stored", async () => {
    const name = db.table("probe_read_delete_write");
    const storage = new PostgresStorage<{ step: string }>({ client: db.pool, tableName: name });
    await storage.write("k", { step: "one" });
    const read = await storage.read("k");
    expect(read).toStrictEqual({ step: "one" });
    await storage.delete("k");
    expect(await storage.has("k")).toBe(false);
    // The write-back of what was read, unchanged: nothing to apply, so the delete stands.
    await storage.write("k", read as { step: string });
    expect(await storage.has("k")).toBe(false);
    // A value no read returned, after this storage deleted the key (and another process wrote it): a plain write.
    await storage.write("k", { step: "one" });
    await storage.read("k");
    await storage.delete("k");
    await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '{"step":"two"}')`);
    await storage.write("k", { step: "one" });
    expect(await db.admin(`SELECT value::text AS value FROM "${name}" WHERE key = 'k'`)).toStrictEqual([
      { value: '{"step":"one"}' },
    ]);
    expect(await storage.read("k")).toStrictEqual({ step: "one" });
  });

  describe("a prepared statement lost on the connection runs again unprepared, without failing the call", () => {
    async function client() {
      const connected = new pg.Client({ connectionString: databaseUrl() });
      await connected.connect();
      return connected;
    }

    it("deallocated between two calls (26000)", async () => {
      const name = db.table("probe_deallocated");
      const connected = await client();
      try {
        const storage = new PostgresStorage<number>({ client: connected, tableName: name });
        await storage.write("k", 1);
        expect(await storage.read("k")).toBe(1);
        const { read } = statementsFor(`"${name}"`);
        const prepared = await connected.query("SELECT name FROM pg_prepared_statements WHERE name = $1", [read.name]);
        expect(prepared.rows).toHaveLength(1);
        // pg still believes it is prepared, so it sends no Parse: the server does not know the name.
        await connected.query(`DEALLOCATE "${read.name}"`);
        expect(await storage.read("k")).toBe(1);
        expect(await storage.has("k")).toBe(true);
      } finally {
        await connected.end();
      }
    });

    it("a statement of the same name prepared with another text (42P05)", async () => {
      const name = db.table("probe_same_name");
      const connected = await client();
      try {
        await db.admin(createTableSql(name));
        await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '5')`);
        const { read } = statementsFor(`"${name}"`);
        await connected.query(`PREPARE "${read.name}" AS SELECT 1`);
        const storage = new PostgresStorage<number>({ client: connected, tableName: name });
        expect(await storage.read("k")).toBe(5);
        await storage.write("k", 6);
        expect(await storage.read("k")).toBe(6);
      } finally {
        await connected.query(`DEALLOCATE "${statementsFor(`"${name}"`).read.name}"`).catch(() => {});
        await connected.end();
      }
    });
  });
});
