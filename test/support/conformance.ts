// The conformance suite every client kind runs, under vitest, Deno and Bun.
import * as devalue from "devalue";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countStatements } from "../../dev/counting.ts";
import { PostgresStorage, PostgresStorageError, prefixKeys, type PostgresStorageOptions } from "../../src/index.ts";
import { tableExists, uniqueTable, type ClientKind, type OpenClient } from "./clients.ts";
import { collect } from "./fixture.ts";

const roundTripValues: Record<string, unknown> = {
  object: { step: "age", name: "Ada", nested: { list: [1, 2, { deep: true }], nothing: null } },
  "empty object": {},
  array: [1, "two", { three: 3 }, [4], null],
  "empty array": [],
  string: "hello",
  "empty string": "",
  "string with quotes and backslashes": `'"; DROP TABLE x; -- \\ \n\t`,
  integer: 42,
  "negative float": -3.25,
  zero: 0,
  "large safe integer": Number.MAX_SAFE_INTEGER,
  true: true,
  false: false,
  null: null,
  unicode: { text: "Привет, 世界! 👋🏽 مرحبا e\u0301", emoji: "🧑‍💻" },
};

/**
 * The behaviour every client must show, against a real database. Each call
 * works in tables of its own and drops them afterwards.
 */
export function conformanceSuite(kind: ClientKind): void {
  describe(kind.name, () => {
    let open: OpenClient;
    const tables: string[] = [];
    const table = (label: string) => {
      const name = uniqueTable(label);
      tables.push(name);
      return name;
    };
    const storage = <T>(options: Omit<PostgresStorageOptions<T>, "client"> = {}) =>
      new PostgresStorage<T>({ client: open.client, ...options });

    beforeAll(async () => {
      open = await kind.open();
    });
    afterAll(async () => {
      for (const name of tables) await open.admin(`DROP TABLE IF EXISTS "${name}"`);
      await open.close();
    });

    describe("round trip", () => {
      let store: PostgresStorage<unknown>;
      beforeAll(() => {
        store = storage({ tableName: table("roundtrip") });
      });
      for (const [label, value] of Object.entries(roundTripValues)) {
        it(`keeps ${label}`, async () => {
          await store.write(`k:${label}`, value);
          expect(await store.read(`k:${label}`)).toStrictEqual(value);
        });
      }
      it("overwrites a value", async () => {
        await store.write("overwrite", { v: 1, gone: true });
        await store.write("overwrite", { v: 2 });
        expect(await store.read("overwrite")).toStrictEqual({ v: 2 });
      });
      it("deletes a value, and deleting a missing key is no error", async () => {
        await store.write("doomed", { v: 1 });
        await store.delete("doomed");
        expect(await store.read("doomed")).toBeUndefined();
        await expect(store.delete("never-written")).resolves.toBeUndefined();
      });
      it("answers has() for present and absent keys", async () => {
        await store.write("present", 0);
        expect(await store.has("present")).toBe(true);
        expect(await store.has("absent")).toBe(false);
      });
      it("reads undefined for a key never written", async () => {
        expect(await store.read("nobody")).toBeUndefined();
      });
      it("stores keys that look like SQL verbatim", async () => {
        const key = `'); DROP TABLE "${store.tableName}"; --`;
        await store.write(key, { safe: true });
        expect(await store.read(key)).toStrictEqual({ safe: true });
        expect(await tableExists(open.admin, store.tableName)).toBe(true);
      });
    });

    describe("missing table", () => {
      it("reads, has, deletes and lists as empty without creating the table", async () => {
        const name = table("missing");
        const counted = countStatements(open.client);
        const store = new PostgresStorage({ client: counted.client, tableName: name });
        expect(await store.read("k")).toBeUndefined();
        expect(await store.has("k")).toBe(false);
        await store.delete("k");
        expect(await collect(store.readAllKeys())).toStrictEqual([]);
        expect(counted.statements).toHaveLength(4);
        expect(await tableExists(open.admin, name)).toBe(false);
      });
      it("creates the table on the first write with one extra statement plus the retry", async () => {
        const name = table("lazy");
        const counted = countStatements(open.client);
        const store = new PostgresStorage({ client: counted.client, tableName: name });
        await store.write("k", { first: true });
        expect(counted.statements).toHaveLength(3);
        expect(counted.statements[1]).toMatch(/^CREATE TABLE IF NOT EXISTS/);
        expect(await tableExists(open.admin, name)).toBe(true);
        expect(await store.read("k")).toStrictEqual({ first: true });
      });
      it("creates the table on explicit createTable(), idempotently", async () => {
        const name = table("explicit");
        const store = storage({ tableName: name, createTable: false });
        await store.createTable();
        await store.createTable();
        expect(await tableExists(open.admin, name)).toBe(true);
      });
      it("refuses to create the table when createTable is false, and says how to", async () => {
        const name = table("nocreate");
        const store = storage({ tableName: name, createTable: false });
        const error = await store.write("k", 1).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect((error as PostgresStorageError).code).toBe("42P01");
        expect((error as Error).message).toMatch(/createTableSql|createTable\(\)/);
        expect(await tableExists(open.admin, name)).toBe(false);
      });
    });

    describe("statements per operation", () => {
      it("costs exactly one statement for a warm read, write, delete and has", async () => {
        const name = table("count");
        const counted = countStatements(open.client);
        const store = new PostgresStorage({ client: counted.client, tableName: name });
        await store.write("warm", { a: 1 });
        counted.statements.length = 0;
        await store.read("warm");
        expect(counted.statements).toHaveLength(1);
        await store.write("warm", { a: 2 });
        expect(counted.statements).toHaveLength(2);
        await store.has("warm");
        expect(counted.statements).toHaveLength(3);
        await store.delete("warm");
        expect(counted.statements).toHaveLength(4);
        expect(counted.statements.some((text) => /CREATE/i.test(text))).toBe(false);
      });
      it("costs no statement to construct", () => {
        const counted = countStatements(open.client);
        new PostgresStorage({ client: counted.client, tableName: table("ctor") });
        expect(counted.statements).toHaveLength(0);
      });
    });

    describe("readAll*", () => {
      const rows = 2_345; // more than two pages of keys and 23 pages of entries
      let name: string;
      beforeAll(async () => {
        name = table("readall");
        await storage({ tableName: name }).createTable();
        await open.admin(
          `INSERT INTO "${name}" (key, value) SELECT 'app:' || lpad(i::text, 5, '0'), json_build_object('n', i) FROM generate_series(1, $1::int) AS i`,
          [rows],
        );
        await open.admin(
          `INSERT INTO "${name}" (key, value) VALUES ('other:1', '{"n": -1}'), ('apple:1', '{"n": -2}'), ('app', '{"n": -3}')`,
        );
      });
      it("lists every key of the builder across pages, in order, without the prefix", async () => {
        const keys = await collect(storage({ tableName: name, keyBuilder: prefixKeys("app") }).readAllKeys());
        expect(keys).toHaveLength(rows);
        expect(keys[0]).toBe("00001");
        expect(keys.at(-1)).toBe(String(rows).padStart(5, "0"));
        expect(new Set(keys).size).toBe(rows);
      });
      it("lists values and entries across pages", async () => {
        const store = storage<{ n: number }>({ tableName: name, keyBuilder: prefixKeys("app") });
        const values = await collect(store.readAllValues());
        expect(values.map((v) => v.n)).toStrictEqual(Array.from({ length: rows }, (_, i) => i + 1));
        const entries = await collect(store.readAllEntries());
        expect(entries).toHaveLength(rows);
        expect(entries[41]).toStrictEqual(["00042", { n: 42 }]);
      });
      it("lists every key of the table with the default builder", async () => {
        const keys = await collect(storage({ tableName: name }).readAllKeys());
        expect(keys).toHaveLength(rows + 3);
        expect(keys).toContain("other:1");
        expect(keys).toContain("app");
      });
      it("keeps prefixes apart even when one starts with another", async () => {
        const keys = await collect(storage({ tableName: name, keyBuilder: prefixKeys("apple") }).readAllKeys());
        expect(keys).toStrictEqual(["1"]);
      });
      it("filters through parse() for builders without a prefix", async () => {
        const store = storage({
          tableName: name,
          keyBuilder: { build: (k) => `other:${k}`, parse: (s) => (s.startsWith("other:") ? s.slice(6) : undefined) },
        });
        expect(await collect(store.readAllKeys())).toStrictEqual(["1"]);
        expect(await collect(store.readAllEntries())).toStrictEqual([["1", { n: -1 }]]);
      });
    });

    describe("key builders", () => {
      it("keeps two prefixes in one table apart", async () => {
        const name = table("prefix");
        const a = storage({ tableName: name, keyBuilder: prefixKeys("bot-a") });
        const b = storage({ tableName: name, keyBuilder: prefixKeys("bot-b", "/") });
        await a.write("42", "from a");
        await b.write("42", "from b");
        expect(await a.read("42")).toBe("from a");
        expect(await b.read("42")).toBe("from b");
        const stored = await open.admin(`SELECT key FROM "${name}" ORDER BY key`);
        expect(stored.map((row) => row.key)).toStrictEqual(["bot-a:42", "bot-b/42"]);
        expect(await collect(a.readAllEntries())).toStrictEqual([["42", "from a"]]);
      });
      it("keeps prefixes apart with a separator that overlaps itself, and refuses those it cannot (issue 20)", async () => {
        const name = table("overlap_prefix");
        // The pair: "bot" with "-1001234567" and "bot-" with "1001234567" were both "bot---1001234567".
        expect(() => prefixKeys("bot-", "--")).toThrow(/ends with "-", which is how the separator "--" begins/);
        const prefixes = ["bot", "bot_", "bot-x", "-", "b"];
        const stores = prefixes.map((prefix) =>
          storage<string>({ tableName: name, keyBuilder: prefixKeys(prefix, "--") }),
        );
        const keys = ["-1001234567", "1001234567", "-", "--", "x--1", "_--1"];
        for (const [i, store] of stores.entries())
          for (const key of keys) await store.write(key, `${prefixes[i]} ${key}`);
        const stored = await open.admin(`SELECT key FROM "${name}"`);
        expect(stored).toHaveLength(prefixes.length * keys.length);
        for (const [i, store] of stores.entries()) {
          for (const key of keys) expect(await store.read(key)).toBe(`${prefixes[i]} ${key}`);
          expect((await collect(store.readAllKeys())).sort()).toStrictEqual([...keys].sort());
        }
        await stores[0]?.delete("-1001234567");
        expect(await stores[1]?.read("1001234567")).toBe("bot_ 1001234567");
        expect(await stores[0]?.has("-1001234567")).toBe(false);
      });
      it("scopes non-ASCII prefixes", async () => {
        const name = table("unicode_prefix");
        const a = storage({ tableName: name, keyBuilder: prefixKeys("ü") });
        const b = storage({ tableName: name, keyBuilder: prefixKeys("üb") });
        await a.write("1", 1);
        await b.write("2", 2);
        expect(await collect(a.readAllKeys())).toStrictEqual(["1"]);
        expect(await collect(b.readAllKeys())).toStrictEqual(["2"]);
      });
      it("accepts a plain function, and explains why readAll* needs parse()", async () => {
        const name = table("fnbuilder");
        const store = storage({ tableName: name, keyBuilder: (k) => `fn-${k}` });
        await store.write("7", { ok: 1 });
        expect(await store.read("7")).toStrictEqual({ ok: 1 });
        expect((await open.admin(`SELECT key FROM "${name}"`))[0]?.key).toBe("fn-7");
        await expect(collect(store.readAllKeys())).rejects.toThrow(/parse/);
      });
    });

    describe("codecs", () => {
      it("round-trips superjson's types when superjson is passed as it is", async () => {
        const store = storage({ tableName: table("superjson"), codec: superjson });
        const value = {
          at: new Date("2024-05-06T07:08:09.010Z"),
          tags: new Set(["a"]),
          map: new Map([[1, "one"]]),
          big: 10n ** 20n,
        };
        await store.write("k", value);
        expect(await store.read("k")).toStrictEqual(value);
      });
      it("round-trips devalue's types, cycles included, when devalue is passed as it is", async () => {
        const store = storage({ tableName: table("devalue"), codec: devalue });
        const value: { at: Date; big: bigint; self?: unknown } = { at: new Date(0), big: 7n };
        value.self = value;
        await store.write("k", value);
        const read = (await store.read("k")) as typeof value;
        expect(read.at).toStrictEqual(new Date(0));
        expect(read.big).toBe(7n);
        expect(read.self).toBe(read);
      });
      it("stores the codec's text as JSON the database can query", async () => {
        const name = table("jsonquery");
        await storage({ tableName: name }).write("k", { step: "age" });
        const [row] = await open.admin(`SELECT value->>'step' AS step FROM "${name}" WHERE key = 'k'`);
        expect(row?.step).toBe("age");
      });
    });

    describe("bad input leaves the stored value as it was", () => {
      let store: PostgresStorage<unknown>;
      beforeAll(async () => {
        store = storage({ tableName: table("badinput") });
        await store.write("k", { intact: true });
      });
      const refuse = async (attempt: () => Promise<unknown>, message: RegExp) => {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect((error as Error).message).toMatch(message);
        expect(await store.read("k")).toStrictEqual({ intact: true });
      };
      it("refuses a BigInt under JSON", () => refuse(() => store.write("k", { n: 1n }), /cannot be encoded.*BigInt/s));
      it("refuses a cyclic value under JSON", () => {
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        return refuse(() => store.write("k", cyclic), /cannot be encoded.*cycles/s);
      });
      it("refuses undefined", () => refuse(() => store.write("k", undefined), /not a string.*delete/s));
      it("refuses a codec that returns a non-string", async () => {
        const bad = storage({
          tableName: store.tableName,
          codec: { stringify: () => 42 as unknown as string, parse: JSON.parse },
        });
        await refuse(() => bad.write("k", { replaced: true }), /into number, not a string/);
      });
      it("refuses codec output that is not JSON", async () => {
        const bad = storage({ tableName: store.tableName, codec: { stringify: () => "not json", parse: (t) => t } });
        await refuse(() => bad.write("k", { replaced: true }), /must be JSON/);
      });
      it("refuses a key that is not a string", () =>
        refuse(() => store.write(17 as unknown as string, { replaced: true }), /keys must be strings, got number/));
      it("refuses a key with U+0000", () => refuse(() => store.write("k\0", { replaced: true }), /U\+0000/));
    });

    describe("update, expiry and prune", () => {
      it("update() creates the row from the patch, merges later patches, and returns the merged value", async () => {
        const store = storage<{ a?: number; b?: string; keep?: boolean }>({ tableName: table("update") });
        expect(await store.update("k", { a: 1, keep: true })).toStrictEqual({ a: 1, keep: true });
        expect(await store.update("k", { b: "x", a: 2 })).toStrictEqual({ a: 2, b: "x", keep: true });
        expect(await store.read("k")).toStrictEqual({ a: 2, b: "x", keep: true });
      });
      it("applies a write-back as its change: one compare-and-set when the row is as read, merged onto another's change", async () => {
        const name = table("write_back");
        const counted = countStatements(open.client);
        const store = new PostgresStorage<Record<string, number>>({ client: counted.client, tableName: name });
        const other = storage<Record<string, number>>({ tableName: name }); // another isolate's storage
        await store.write("k", { a: 1, b: 1 });
        const session = (await store.read("k")) as Record<string, number>;
        session.a = 2;
        counted.statements.length = 0;
        await store.write("k", session);
        expect(counted.statements).toHaveLength(1);
        expect(counted.statements[0]).toMatch(/^(WITH changed AS \()?UPDATE /);
        const again = (await store.read("k")) as Record<string, number>;
        await other.update("k", { c: 3 });
        again.b = 5;
        await store.write("k", again);
        expect(await other.read("k")).toStrictEqual({ a: 2, b: 5, c: 3 });
      });
      it("writes with millisecondsToLive set an expiry on the database clock, and expired rows are invisible", async () => {
        const name = table("ttl");
        const store = storage({ tableName: name, millisecondsToLive: 60_000 });
        await store.write("k", { v: 1 });
        const [row] = await open.admin(
          `SELECT extract(epoch FROM expires_at - now()) * 1000 AS left_ms FROM "${name}" WHERE key = 'k'`,
        );
        expect(Number(row?.left_ms)).toBeGreaterThan(55_000);
        expect(Number(row?.left_ms)).toBeLessThanOrEqual(60_000);
        await open.admin(`UPDATE "${name}" SET expires_at = now() - interval '1 second' WHERE key = 'k'`);
        expect(await store.read("k")).toBeUndefined();
        expect(await store.has("k")).toBe(false);
        expect(await collect(store.readAllKeys())).toStrictEqual([]);
        expect(await store.update("k", { fresh: true })).toStrictEqual({ fresh: true });
      });
      it("prune() deletes expired rows only and counts them", async () => {
        const name = table("prune");
        const store = storage({ tableName: name });
        await store.write("live", 1);
        await open.admin(
          `INSERT INTO "${name}" (key, value, expires_at) SELECT 'old:' || i, '1', now() - interval '1 minute' FROM generate_series(1, 1500) AS i`,
        );
        expect(await store.prune()).toBe(1500);
        expect(await store.prune()).toBe(0);
        expect(await open.admin(`SELECT key FROM "${name}"`)).toStrictEqual([{ key: "live" }]);
      });
    });

    describe("errors", () => {
      it("throws, never answers undefined, when the table has the wrong shape", async () => {
        const name = table("wrongshape");
        await open.admin(`CREATE TABLE "${name}" (key text PRIMARY KEY, data jsonb)`);
        const error = await storage({ tableName: name })
          .read("k")
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect((error as PostgresStorageError).code).toBe("42703");
        expect((error as PostgresStorageError).cause).toBeDefined();
      });
    });
  });
}
