import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { PostgresStorage, PostgresStorageError, StorageValidationError, jsonWithDates } from "../src/index.js";
import { collect, useFixture } from "./support/fixture.js";

const Session = z.object({
  step: z.enum(["idle", "name", "age"]),
  name: z.string().min(1).optional(),
  age: z.number().int().min(0).optional(),
});
type Session = z.infer<typeof Session>;

describe("schema validation", () => {
  const db = useFixture();
  const storage = (
    tableName: string,
    options: Partial<ConstructorParameters<typeof PostgresStorage<Session>>[0]> = {},
  ) => new PostgresStorage({ client: db.pool, tableName, schema: Session, ...options });
  const seed = async (tableName: string, key: string, value: unknown) => {
    await new PostgresStorage({ client: db.pool, tableName }).write(key, value);
  };

  describe("on read", () => {
    it("returns valid values as the schema parses them", async () => {
      const name = db.table("valid");
      await seed(name, "k", { step: "name", name: "Ada" });
      expect(await storage(name).read("k")).toStrictEqual({ step: "name", name: "Ada" });
    });

    it('throws StorageValidationError with the key and issues by default ("throw"), leaving the row alone', async () => {
      const name = db.table("throw");
      await seed(name, "k", { step: "flying", age: -1 });
      const error = await storage(name)
        .read("k")
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageValidationError);
      expect(error).toBeInstanceOf(PostgresStorageError);
      const { key, issues, message } = error as StorageValidationError;
      expect(key).toBe("k");
      expect(issues.map((issue) => issue.path?.join("."))).toStrictEqual(["step", "age"]);
      expect(message).toMatch(/step: .*; age: /);
      expect(await new PostgresStorage({ client: db.pool, tableName: name }).read("k")).toStrictEqual({
        step: "flying",
        age: -1,
      });
    });

    it('reads an invalid value as missing with "discard", so grammY starts afresh', async () => {
      const name = db.table("discard");
      await seed(name, "bad", { step: 7 });
      await seed(name, "good", { step: "idle" });
      const store = storage(name, { onInvalid: "discard" });
      expect(await store.read("bad")).toBeUndefined();
      expect(await collect(store.readAllEntries())).toStrictEqual([["good", { step: "idle" }]]);
    });

    it("repairs or migrates with a function, whose result is checked again", async () => {
      const name = db.table("repair");
      // An earlier deploy stored { stage, userName }; this one expects { step, name }.
      await seed(name, "old", { stage: "name", userName: "Grace" });
      const seen: unknown[] = [];
      const store = storage(name, {
        onInvalid: ({ key, value, issues }) => {
          seen.push({ key, issues: issues.length });
          const old = value as { stage?: string; userName?: string };
          return old.stage === "name" ? { step: "name", name: old.userName } : undefined;
        },
      });
      expect(await store.read("old")).toStrictEqual({ step: "name", name: "Grace" });
      expect(seen).toStrictEqual([{ key: "old", issues: 1 }]);

      const broken = storage(name, { onInvalid: () => ({ step: "nowhere" }) as unknown as Session });
      await expect(broken.read("old")).rejects.toThrow(/onInvalid's repair .*fails the schema/);
      const giveUp = storage(name, { onInvalid: () => undefined });
      expect(await giveUp.read("old")).toBeUndefined();
    });
  });

  describe("on write", () => {
    it("refuses an invalid value before anything is written", async () => {
      const name = db.table("write");
      const store = storage(name);
      await store.write("k", { step: "idle" });
      const error = await store.write("k", { step: "age", age: 3.5 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageValidationError);
      expect((error as StorageValidationError).issues[0]?.path).toStrictEqual(["age"]);
      expect(await store.read("k")).toStrictEqual({ step: "idle" });
    });

    it("writes unchecked with validateOnWrite: false (and the read still checks)", async () => {
      const name = db.table("nowritecheck");
      const store = storage(name, { validateOnWrite: false });
      await store.write("k", { step: "bogus" } as unknown as Session);
      await expect(store.read("k")).rejects.toBeInstanceOf(StorageValidationError);
    });
  });

  it("works with transforms and defaults: z.coerce.date() and .default()", async () => {
    const Reminder = z.object({
      at: z.coerce.date(),
      repeat: z.boolean().default(false),
      tags: z.array(z.string()).default([]),
    });
    const name = db.table("transforms");
    // The default codec refuses a Date (JSON would store a string): jsonWithDates keeps it.
    const store = new PostgresStorage({ client: db.pool, tableName: name, schema: Reminder, codec: jsonWithDates });
    const at = new Date("2030-01-02T03:04:05.000Z");
    await store.write("k", { at, repeat: true, tags: ["x"] });
    expect(await store.read("k")).toStrictEqual({ at, repeat: true, tags: ["x"] });
    // A row from before `repeat` and `tags` existed: the defaults fill them in.
    await seed(name, "older", { at: "2030-01-02T03:04:05.000Z" });
    expect(await store.read("older")).toStrictEqual({ at, repeat: false, tags: [] });
    const [row] = await db.admin(`SELECT value->'at'->>'$date' AS at FROM "${name}" WHERE key = 'k'`);
    expect(row?.at).toBe("2030-01-02T03:04:05.000Z");
  });

  it("works with valibot", async () => {
    const Counter = v.object({ count: v.pipe(v.number(), v.integer(), v.minValue(0)) });
    const name = db.table("valibot");
    const store = new PostgresStorage({ client: db.pool, tableName: name, schema: Counter });
    await store.write("k", { count: 2 });
    expect(await store.read("k")).toStrictEqual({ count: 2 });
    await expect(store.write("k", { count: -1 })).rejects.toBeInstanceOf(StorageValidationError);
    expect(await store.read("k")).toStrictEqual({ count: 2 });
  });

  it("works with asynchronous schemas", async () => {
    const Slow = z.object({ n: z.number() }).refine(async (value) => value.n !== 13, "unlucky");
    const store = new PostgresStorage({ client: db.pool, tableName: db.table("async"), schema: Slow });
    await store.write("k", { n: 1 });
    expect(await store.read("k")).toStrictEqual({ n: 1 });
    await expect(store.write("k", { n: 13 })).rejects.toThrow(/unlucky/);
  });

  it("keeps Dates without a schema through jsonWithDates, and leaves date-like strings alone", async () => {
    const store = new PostgresStorage({ client: db.pool, tableName: db.table("dates"), codec: jsonWithDates });
    const value = {
      at: new Date("2024-02-29T12:00:00.000Z"),
      nested: [{ when: new Date(0) }],
      text: "2024-02-29T12:00:00.000Z",
    };
    await store.write("k", value);
    expect(await store.read("k")).toStrictEqual(value);
    await expect(store.write("k", { at: new Date(Number.NaN) })).rejects.toThrow(/cannot be encoded/);
    expect(await store.read("k")).toStrictEqual(value);
  });

  it("refuses options of the wrong shape", () => {
    expect(() => new PostgresStorage({ client: db.pool, schema: {} as never })).toThrow(/Standard Schema/);
    expect(() => new PostgresStorage({ client: db.pool, onInvalid: "ignore" as never })).toThrow(/onInvalid must be/);
    expect(() => new PostgresStorage({ client: db.pool, millisecondsToLive: -5 })).toThrow(/positive number/);
    expect(() => new PostgresStorage({ client: db.pool, millisecondsToLive: Number.NaN })).toThrow(/positive number/);
  });
});
