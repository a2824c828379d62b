import fc from "fast-check";
import * as devalue from "devalue";
import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { PostgresStorage, encryptedCodec, jsonWithDates, type Codec } from "../src/index.js";
import { useFixture } from "./support/fixture.js";

// Keys a bot can have: non-empty, no U+0000, no lone surrogates, at most 512 characters.
const keys = fc.string({ minLength: 1, maxLength: 80, unit: "grapheme" }).filter((key) => !key.includes("\0"));
const values = fc.jsonValue({ maxDepth: 4 });
// superjson refuses keys named "__proto__", "prototype" and "constructor", devalue "__proto__" (guards of
// theirs against prototype pollution, not limits of ours): generate what each stores, and test the refusals apart.
const SUPERJSON_REFUSES = ["__proto__", "prototype", "constructor"];
/** Values without an object key of these names, at any depth (in JSON text, `"name":` can only be a key). */
const valuesWithout = (names: string[]) =>
  values.filter((value) => !names.some((name) => JSON.stringify(value).includes(`"${name}":`)));

const codecs: [string, Codec | undefined, fc.Arbitrary<unknown>][] = [
  ["the default codec", undefined, values],
  ["JSON", JSON, values],
  [
    "jsonWithDates",
    jsonWithDates,
    fc.oneof(values, fc.record({ at: fc.date({ noInvalidDate: true }), value: values })),
  ],
  [
    "superjson",
    superjson,
    fc.oneof(
      valuesWithout(SUPERJSON_REFUSES),
      fc.record({
        at: fc.date({ noInvalidDate: true }),
        big: fc.bigInt(),
        set: fc.uniqueArray(fc.integer()).map((a) => new Set(a)),
      }),
    ),
  ],
  [
    "devalue",
    devalue,
    fc.oneof(
      valuesWithout(["__proto__"]),
      fc.record({
        at: fc.date({ noInvalidDate: true }),
        big: fc.bigInt(),
        map: fc.array(fc.tuple(fc.string(), fc.integer())).map((e) => new Map(e)),
      }),
    ),
  ],
  ["encryptedCodec", encryptedCodec({ secret: "property tests need a secret of 32+ chars" }), values],
];

/** A value as comparable text: JSON (which writes -0 as 0, as it is stored), spelling out what JSON cannot. */
const comparable = (value: unknown) =>
  JSON.stringify(value, (_key, inner: unknown) =>
    typeof inner === "bigint"
      ? `${inner}n`
      : inner instanceof Set
        ? { set: [...inner] }
        : inner instanceof Map
          ? { map: [...inner] }
          : inner,
  );

describe("properties", () => {
  const db = useFixture();

  it.each(codecs)("random keys and values round-trip through %s", async (_name, codec, arbitrary) => {
    const storage = new PostgresStorage<unknown>({ client: db.pool, tableName: db.table("prop_roundtrip"), codec });
    await fc.assert(
      fc.asyncProperty(keys, arbitrary, async (key, value) => {
        await storage.write(key, value);
        expect(comparable(await storage.read(key))).toBe(comparable(value));
      }),
      { numRuns: 60 },
    );
  });

  it.each(SUPERJSON_REFUSES)(
    "superjson's refusal of a %s key is an error at write, and nothing is written",
    async (name) => {
      const storage = new PostgresStorage<unknown>({
        client: db.pool,
        tableName: db.table("prop_refused"),
        codec: superjson,
      });
      await storage.write("k", { kept: true });
      const value = JSON.parse(`{"nested": {"${name}": {"a": 1}}}`);
      await expect(storage.write("k", value)).rejects.toThrow(
        /nothing was written: the value for key "k" cannot be encoded/,
      );
      expect(await storage.read("k")).toStrictEqual({ kept: true });
    },
  );

  it("random interleavings of write, delete and read agree with a Map", async () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant("write" as const), key: fc.integer({ min: 0, max: 5 }), value: values }),
      fc.record({ kind: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("read" as const), key: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("has" as const), key: fc.integer({ min: 0, max: 5 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 40 }), async (operations) => {
        const storage = new PostgresStorage<unknown>({ client: db.pool, tableName: db.table("prop_model") });
        const model = new Map<string, unknown>();
        // Each key's operations run in order; different keys' run at once, interleaved.
        const byKey = new Map<string, typeof operations>();
        for (const op of operations) byKey.set(`k${op.key}`, [...(byKey.get(`k${op.key}`) ?? []), op]);
        await Promise.all(
          [...byKey].map(async ([key, ops]) => {
            for (const op of ops) {
              if (op.kind === "write") {
                await storage.write(key, op.value);
                model.set(key, op.value);
              } else if (op.kind === "delete") {
                await storage.delete(key);
                model.delete(key);
              } else if (op.kind === "read") {
                const read = await storage.read(key);
                expect(read === undefined ? undefined : comparable(read)).toBe(
                  model.has(key) ? comparable(model.get(key)) : undefined,
                );
              } else {
                expect(await storage.has(key)).toBe(model.has(key));
              }
            }
          }),
        );
        const listed = new Map<string, unknown>();
        for await (const [key, value] of storage.readAllEntries()) listed.set(key, comparable(value));
        expect(listed).toStrictEqual(new Map([...model].map(([key, value]) => [key, comparable(value)])));
      }),
      { numRuns: 40 },
    );
  });
});
