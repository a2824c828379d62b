import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { countStatements } from "../dev/counting.js";
import {
  PostgresStorage,
  PostgresStorageError,
  StorageOptionError,
  StorageValidationError,
  encryptedCodec,
  jsonWithDates,
  type PostgresStorageOptions,
  type StandardSchema,
} from "../src/index.js";
import { collect, useFixture } from "./support/fixture.js";
import { rejection } from "./support/rejections.js";

const FIELDS = 50;
type Fields = Record<string, number>;

describe("update()", () => {
  // 20 connections: the 50 storages below really run side by side.
  const db = useFixture(20);
  const storages = (tableName: string) =>
    Array.from({ length: FIELDS }, () => new PostgresStorage<Fields>({ client: db.pool, tableName }));

  it("50 concurrent updates of 50 different fields of one key, from 50 storages: all 50 fields are there", async () => {
    const name = db.table("update_race");
    await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
    await Promise.all(storages(name).map((storage, i) => storage.update("chat", { [`field${i}`]: i })));
    const stored = (await new PostgresStorage<Fields>({ client: db.pool, tableName: name }).read("chat")) ?? {};
    expect(Object.keys(stored)).toHaveLength(FIELDS);
    for (let i = 0; i < FIELDS; i += 1) expect(stored[`field${i}`]).toBe(i);
  });

  it("the same through read-modify-write in 50 storages keeps every field too: each write-back applies only its change", async () => {
    const name = db.table("update_rmw");
    await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
    await Promise.all(
      storages(name).map(async (storage, i) => {
        const current = (await storage.read("chat")) ?? {};
        await storage.write("chat", { ...current, [`field${i}`]: i });
      }),
    );
    const stored = (await new PostgresStorage<Fields>({ client: db.pool, tableName: name }).read("chat")) ?? {};
    expect(Object.keys(stored)).toHaveLength(FIELDS);
    for (let i = 0; i < FIELDS; i += 1) expect(stored[`field${i}`]).toBe(i);
  });

  it("keeps the order of the fields, nested ones included, and the stored text as JSON.stringify writes it", async () => {
    type Loose = Record<string, unknown>;
    for (const schema of [undefined, z.record(z.string(), z.unknown()) as StandardSchema<Loose>]) {
      const name = db.table("update_order");
      const store = new PostgresStorage<Loose>({ client: db.pool, tableName: name, schema });
      const cart = { pizza: 2, cola: 1, tiramisu: 1 };
      await store.write("k", { cart, menu: { zeta: [3, { y: 1, x: 2 }], alpha: 'a\n\u0001"' } });
      const merged = await store.update("k", { step: "pay", cart: { ...cart, beer: 1 } });
      const expected = {
        cart: { pizza: 2, cola: 1, tiramisu: 1, beer: 1 },
        menu: { zeta: [3, { y: 1, x: 2 }], alpha: 'a\n\u0001"' },
        step: "pay",
      };
      expect(JSON.stringify(merged)).toBe(JSON.stringify(expected));
      const [row] = await db.admin(`SELECT value::text AS value FROM "${name}"`);
      expect(row?.value).toBe(JSON.stringify(expected));
      expect(JSON.stringify(await store.read("k"))).toBe(JSON.stringify(expected));
    }
  });

  it("merges values holding U+0000, which PostgreSQL's JSON functions cannot read, in JavaScript instead", async () => {
    const store = new PostgresStorage<Record<string, string>>({ client: db.pool, tableName: db.table("update_nul") });
    await store.write("k", { before: "a\0b" });
    expect(await store.update("k", { after: "c\0d" })).toStrictEqual({ before: "a\0b", after: "c\0d" });
    expect(await store.update("k", { after: "plain" })).toStrictEqual({ before: "a\0b", after: "plain" });
    expect(await store.read("k")).toStrictEqual({ before: "a\0b", after: "plain" });
  });

  it("merges values holding a lone surrogate, which PostgreSQL's JSON functions refuse though the column took them, in JavaScript", async () => {
    const store = new PostgresStorage<Record<string, string>>({
      client: db.pool,
      tableName: db.table("update_surrogate"),
    });
    await store.write("k", { before: "half\ud83d" });
    expect(await store.update("k", { after: "plain" })).toStrictEqual({ before: "half\ud83d", after: "plain" });
    expect(await store.update("k", { after: "\udc00half" })).toStrictEqual({
      before: "half\ud83d",
      after: "\udc00half",
    });
    expect(await store.read("k")).toStrictEqual({ before: "half\ud83d", after: "\udc00half" });
  });

  it("never brings an expired row back: it merges into nothing, in the database and in the checked merge after a read", async () => {
    for (const schema of [
      undefined,
      z.object({ a: z.number().optional(), b: z.number().optional() }) as StandardSchema<Fields>,
    ]) {
      const name = db.table("update_expired");
      const store = new PostgresStorage<Fields>({
        client: db.pool,
        tableName: name,
        schema,
        millisecondsToLive: 60_000,
      });
      await store.write("k", { a: 1 });
      await store.read("k"); // what a compare-and-set would build on
      await db.admin(`UPDATE "${name}" SET expires_at = now() - interval '1 second'`);
      expect(await store.update("k", { b: 2 })).toStrictEqual({ b: 2 });
      expect(await store.read("k")).toStrictEqual({ b: 2 });
    }
  });

  it("costs one statement", async () => {
    const name = db.table("update_count");
    const counted = countStatements(db.pool);
    const store = new PostgresStorage<Fields>({ client: counted.client, tableName: name });
    await store.write("k", { a: 1 });
    counted.statements.length = 0;
    expect(await store.update("k", { b: 2 })).toStrictEqual({ a: 1, b: 2 });
    expect(counted.statements).toHaveLength(1);
  });

  describe("with a schema", () => {
    const Profile = z.object({ name: z.string(), age: z.number().int().min(0), city: z.string().optional() });
    const profiles = (tableName: string) => new PostgresStorage({ client: db.pool, tableName, schema: Profile });

    it("returns the merged value as the schema parses it", async () => {
      const store = profiles(db.table("update_schema"));
      await store.write("k", { name: "Ada", age: 36 });
      const merged = await store.update("k", { city: "London" });
      expect(merged).toStrictEqual({ name: "Ada", age: 36, city: "London" });
    });

    it("writes nothing when the merge fails the schema: the stored row is untouched, expiry included", async () => {
      const name = db.table("update_invalid");
      const store = new PostgresStorage({
        client: db.pool,
        tableName: name,
        schema: Profile,
        millisecondsToLive: 60_000,
      });
      await store.write("k", { name: "Ada", age: 36 });
      const before = await db.admin(`SELECT value::text AS value, updated_at, expires_at FROM "${name}"`);
      const error = await store.update("k", { age: -1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageValidationError);
      expect((error as Error).message).toMatch(/nothing was written.*fails the schema/);
      expect(await db.admin(`SELECT value::text AS value, updated_at, expires_at FROM "${name}"`)).toStrictEqual(
        before,
      );
    });

    it("creates nothing when the first patch fails the schema", async () => {
      const store = profiles(db.table("update_invalid_new"));
      await expect(store.update("k", { name: "Ada" })).rejects.toBeInstanceOf(StorageValidationError);
      expect(await store.has("k")).toBe(false);
    });

    it("never deletes or overwrites another writer's row when its own merge is invalid", async () => {
      const name = db.table("update_invalid_race");
      const mine = profiles(name);
      const theirs = profiles(name);
      // Both start from "no row"; the other writer creates a valid one first.
      await theirs.write("k", { name: "Grace", age: 40 });
      await expect(mine.update("k", { age: -5 })).rejects.toBeInstanceOf(StorageValidationError);
      expect(await theirs.read("k")).toStrictEqual({ name: "Grace", age: 40 });
    });

    it("50 concurrent checked updates of 50 fields, from 50 storages: all 50 fields are there", async () => {
      const Counters = z.record(z.string(), z.number().int());
      const name = db.table("update_schema_race");
      await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
      await Promise.all(
        Array.from({ length: FIELDS }, (_, i) =>
          new PostgresStorage({ client: db.pool, tableName: name, schema: Counters }).update("chat", {
            [`field${i}`]: i,
          }),
        ),
      );
      const stored = (await new PostgresStorage<Fields>({ client: db.pool, tableName: name }).read("chat")) ?? {};
      expect(Object.keys(stored)).toHaveLength(FIELDS);
    });

    it("costs one statement when the storage has just read the value (as grammY's session does), two otherwise", async () => {
      const name = db.table("update_schema_count");
      await profiles(name).write("k", { name: "Ada", age: 36 });
      const counted = countStatements(db.pool);
      const store = new PostgresStorage({ client: counted.client, tableName: name, schema: Profile });
      await store.update("k", { age: 37 });
      expect(counted.statements).toHaveLength(2);
      await store.read("k");
      counted.statements.length = 0;
      expect(await store.update("k", { city: "London" })).toStrictEqual({ name: "Ada", age: 37, city: "London" });
      expect(counted.statements).toHaveLength(1);
    });
  });

  describe("takes the stored value exactly as read() does", () => {
    const Session = z.object({ step: z.enum(["idle", "name"]), name: z.string().optional() });
    /** A row in an older shape, which the schema no longer accepts. */
    const oldShape = async (label: string) => {
      const name = db.table(label);
      await new PostgresStorage({ client: db.pool, tableName: name }).write("k", { userName: "Ada" });
      return name;
    };
    const row = async (name: string) =>
      (await db.admin(`SELECT value::text AS value FROM "${name}" WHERE key = 'k'`))[0]?.value;

    for (const validateOnWrite of [true, false]) {
      describe(`validateOnWrite: ${validateOnWrite}`, () => {
        it('onInvalid "throw": rejects, and the stored row is untouched', async () => {
          const name = await oldShape("update_invalid_throw");
          const store = new PostgresStorage({ client: db.pool, tableName: name, schema: Session, validateOnWrite });
          await expect(store.read("k")).rejects.toBeInstanceOf(StorageValidationError);
          await expect(store.update("k", { step: "idle" })).rejects.toBeInstanceOf(StorageValidationError);
          expect(await row(name)).toBe('{"userName":"Ada"}');
        });

        it('onInvalid "discard": the stored value counts as absent, and the merge replaces it', async () => {
          const name = await oldShape("update_invalid_discard");
          const store = new PostgresStorage({
            client: db.pool,
            tableName: name,
            schema: Session,
            onInvalid: "discard",
            validateOnWrite,
          });
          expect(await store.read("k")).toBeUndefined();
          expect(await store.update("k", { step: "idle" })).toStrictEqual({ step: "idle" });
          expect(await row(name)).toBe('{"step":"idle"}');
        });

        it("a repair function: the merge builds on the repaired value", async () => {
          const name = await oldShape("update_invalid_repair");
          const store = new PostgresStorage({
            client: db.pool,
            tableName: name,
            schema: Session,
            validateOnWrite,
            onInvalid: ({ value }) => ({ step: "idle" as const, name: (value as { userName: string }).userName }),
          });
          expect(await store.update("k", { step: "name" })).toStrictEqual({ step: "name", name: "Ada" });
          expect(await store.read("k")).toStrictEqual({ step: "name", name: "Ada" });
        });
      });
    }
  });

  describe("patches that set nothing, and undefined fields", () => {
    const Optional = z.object({ a: z.number().optional(), b: z.number().optional() });
    const kinds = [
      [
        "without a schema",
        (tableName: string) => new PostgresStorage<{ a?: number; b?: number }>({ client: db.pool, tableName }),
      ],
      ["with a schema", (tableName: string) => new PostgresStorage({ client: db.pool, tableName, schema: Optional })],
    ] as const;
    for (const [label, open] of kinds) {
      it(`${label}: update(key, {}) of a missing key creates no row and answers {}`, async () => {
        const store = open(db.table("update_empty"));
        expect(await store.update("k", {})).toStrictEqual({});
        expect(await store.update("k", { a: undefined })).toStrictEqual({});
        expect(await store.has("k")).toBe(false);
        expect(await collect(store.readAllKeys())).toStrictEqual([]);
      });

      it(`${label}: update(key, {}) of a stored object answers it and writes nothing`, async () => {
        const name = db.table("update_empty_stored");
        const store = open(name);
        await store.write("k", { a: 1 });
        const before = await db.admin(`SELECT updated_at FROM "${name}"`);
        expect(await store.update("k", {})).toStrictEqual({ a: 1 });
        expect(await db.admin(`SELECT updated_at FROM "${name}"`)).toStrictEqual(before);
      });

      it(`${label}: a field set to undefined is left as it is`, async () => {
        const store = open(db.table("update_undefined"));
        await store.write("k", { a: 1, b: 2 });
        expect(await store.update("k", { a: undefined, b: 3 })).toStrictEqual({ a: 1, b: 3 });
        expect(await store.read("k")).toStrictEqual({ a: 1, b: 3 });
      });
    }

    it("with a schema the empty object fails, update(key, {}) of a missing key rejects and creates nothing", async () => {
      const store = new PostgresStorage({
        client: db.pool,
        tableName: db.table("update_empty_invalid"),
        schema: z.object({ a: z.number() }),
      });
      await expect(store.update("k", {})).rejects.toBeInstanceOf(StorageValidationError);
      expect(await store.has("k")).toBe(false);
    });

    it("a field named __proto__ is merged as a field, not as a prototype, in the database and in JavaScript", async () => {
      // A schema that accepts anything as it is (zod would leave such a key out itself).
      const anything: StandardSchema<Record<string, unknown>> = {
        "~standard": { validate: (value) => ({ value: value as Record<string, unknown> }) },
      };
      for (const schema of [undefined, anything]) {
        const store = new PostgresStorage<Record<string, unknown>>({
          client: db.pool,
          tableName: db.table("update_proto"),
          schema,
        });
        await store.write("k", { a: 1 });
        const patch = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
        const merged = await store.update("k", patch);
        expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
        expect(Object.keys(merged)).toStrictEqual(["a", "__proto__"]);
        expect(Object.keys((await store.read("k")) ?? {})).toStrictEqual(["a", "__proto__"]);
      }
    });
  });

  it("refuses to merge into a value that is not an object, and changes nothing", async () => {
    const name = db.table("update_scalar");
    const store = new PostgresStorage<unknown>({ client: db.pool, tableName: name });
    await store.write("k", [1, 2]);
    await expect(store.update("k", { a: 1 } as never)).rejects.toThrow(/merges into objects/);
    expect(await store.read("k")).toStrictEqual([1, 2]);
  });

  it("refuses to merge into a stored null, and changes nothing, also where it merges in JavaScript (superjson, encryptedCodec, a nullable schema)", async () => {
    const kinds: [string, Partial<PostgresStorageOptions<unknown>>][] = [
      ["the default codec", {}],
      ["superjson", { codec: superjson }],
      ["encryptedCodec", { codec: encryptedCodec({ secret: "n".repeat(32) }) }],
      ["a nullable schema", { schema: z.object({ a: z.number().optional() }).nullable() as StandardSchema<unknown> }],
    ];
    for (const [label, options] of kinds) {
      const name = db.table("update_null");
      const store = new PostgresStorage<unknown>({ client: db.pool, tableName: name, ...options });
      await store.write("k", null);
      const refused = await store.update("k", { a: 1 } as never).catch((e: unknown) => e);
      expect(refused, label).toBeInstanceOf(PostgresStorageError);
      expect((refused as Error).message, label).toMatch(/merges into objects/);
      expect(await store.read("k"), label).toBeNull();
      expect(await new PostgresStorage<unknown>({ client: db.pool, tableName: name, ...options }).read("k")).toBeNull();
    }
  });

  it("says a merge was stored when a mergeable codec then cannot decode it, and marks it in doubt", async () => {
    const name = db.table("update_undecodable");
    // A codec that claims to merge but refuses to read a field it did not write.
    const picky = {
      mergeable: true,
      stringify: (value: unknown) => JSON.stringify(value),
      parse(text: string) {
        const value = JSON.parse(text) as Record<string, unknown>;
        if ("m" in value) throw new Error("m is not mine");
        return value;
      },
    };
    const store = new PostgresStorage<{ n?: number; m?: number }>({ client: db.pool, tableName: name, codec: picky });
    await store.write("k", { n: 1 });
    const error = await rejection(store.update("k", { m: 2 }));
    expect({ operation: error.operation, key: error.key, inDoubt: error.inDoubt }).toStrictEqual({
      operation: "update",
      key: "k",
      inDoubt: true,
    });
    expect(error.message).toMatch(
      /^update\(\) stored its merge under key "k", but the codec cannot decode .*m is not mine/,
    );
    const [row] = await db.admin(`SELECT value::text AS v FROM "${name}"`);
    expect(row?.v).toBe('{"n":1,"m":2}');
  });

  it("refuses a patch that is not a plain object (an array, null, a Map, a class instance), writing nothing", async () => {
    const store = new PostgresStorage<Fields>({ client: db.pool, tableName: db.table("update_badpatch") });
    await store.write("k", { a: 1 });
    class Patch {
      b = 2;
    }
    for (const patch of [[1], null, new Map([["b", 2]]), new Patch(), new Date()]) {
      const refused = store.update("k", patch as never);
      await expect(refused).rejects.toBeInstanceOf(StorageOptionError);
      await expect(store.update("k", patch as never)).rejects.toThrow(/takes a plain object of fields/);
    }
    expect(await store.read("k")).toStrictEqual({ a: 1 });
  });

  it("merges in JavaScript with a compare-and-set under codecs the database cannot merge (superjson, encryptedCodec)", async () => {
    for (const codec of [superjson, encryptedCodec({ secret: "x".repeat(32) })]) {
      const name = db.table("update_codec");
      const store = new PostgresStorage<Fields>({ client: db.pool, tableName: name, codec });
      const other = new PostgresStorage<Fields>({ client: db.pool, tableName: name, codec });
      await store.write("k", { a: 1 });
      await other.update("k", { c: 3 });
      expect(await store.update("k", { b: 2 })).toStrictEqual({ a: 1, c: 3, b: 2 });
      expect(await other.read("k")).toStrictEqual({ a: 1, c: 3, b: 2 });
    }
  });

  it("merges in JavaScript under any codec when a schema checks the result (superjson, encryptedCodec)", async () => {
    const Dated = z.object({ at: z.date().optional(), n: z.number().optional() });
    for (const codec of [superjson, encryptedCodec({ secret: "y".repeat(32), codec: superjson })]) {
      const store = new PostgresStorage({
        client: db.pool,
        tableName: db.table("update_codec_schema"),
        codec,
        schema: Dated,
      });
      await store.write("k", { n: 1 });
      const at = new Date("2032-02-02T02:02:02.002Z");
      expect(await store.update("k", { at })).toStrictEqual({ n: 1, at });
      expect(await store.read("k")).toStrictEqual({ n: 1, at });
    }
  });

  it("merges Dates under jsonWithDates: a nested Date survives, a stored Date is no object to merge into", async () => {
    const name = db.table("update_dates");
    const store = new PostgresStorage<{ at?: Date; n?: number; nested?: { when: Date } } | Date>({
      client: db.pool,
      tableName: name,
      codec: jsonWithDates,
    });
    const when = new Date("2030-01-01T00:00:00.000Z");
    await store.write("k", { n: 1, nested: { when } });
    const at = new Date("2031-05-05T05:05:05.005Z");
    expect(await store.update("k", { at })).toStrictEqual({ n: 1, nested: { when }, at });
    expect(await store.read("k")).toStrictEqual({ n: 1, nested: { when }, at });
    await store.write("d", when);
    await expect(store.update("d", { n: 2 })).rejects.toThrow(/merges into objects/);
    expect(await store.read("d")).toStrictEqual(when);
    // An object of no fields is an object, not a Date: merged into, as under the default codec.
    await store.write("empty", {});
    expect(await store.update("empty", { n: 3 })).toStrictEqual({ n: 3 });
    expect(await store.read("empty")).toStrictEqual({ n: 3 });
  });
});
