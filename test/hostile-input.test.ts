import { describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { PostgresStorage, PostgresStorageError, createTableSql, prefixKeys, type Codec } from "../src/index.js";
import { useFixture } from "./support/fixture.js";

const GOOD = { intact: true, list: [1, 2, 3] };

function deeplyNested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
}

function cyclic(): unknown {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

const codecOf = (stringify: (value: unknown) => unknown): Codec => ({
  stringify: stringify as Codec["stringify"],
  parse: JSON.parse,
});

/** What to try, and the words the error must use to name the problem. */
type BadInput = [
  label: string,
  attempt: (storage: PostgresStorage<unknown>, table: string) => Promise<unknown>,
  problem: RegExp,
];

const badKeys: BadInput[] = [
  ["an empty key", (s) => s.write("", 1), /empty/],
  ["a key with U+0000", (s) => s.write("a\0b", 1), /U\+0000/],
  ["a key that is only U+0000", (s) => s.write("\0", 1), /U\+0000/],
  ["a 1 MB key", (s) => s.write("k".repeat(1_000_000), 1), /longer than 512/],
  ["a key of 513 characters", (s) => s.write("k".repeat(513), 1), /longer than 512/],
  ["a key with a lone high surrogate", (s) => s.write("a\ud800b", 1), /surrogate/],
  ["a key with a lone low surrogate", (s) => s.write("\udc00", 1), /surrogate/],
  ["a number as key", (s) => s.write(42 as never, 1), /keys must be strings/],
  ["undefined as key", (s) => s.write(undefined as never, 1), /keys must be strings/],
  ["null as key", (s) => s.write(null as never, 1), /keys must be strings/],
  ["an object as key", (s) => s.write({ toString: () => "k" } as never, 1), /keys must be strings/],
  ["a symbol as key", (s) => s.write(Symbol("k") as never, 1), /keys must be strings/],
  [
    "a key builder that returns a number",
    (_s, t) => storageOn(t, { keyBuilder: () => 7 as never }).write("k", 1),
    /returned number/,
  ],
  ["a key builder that adds U+0000", (_s, t) => storageOn(t, { keyBuilder: (k) => `${k}\0` }).write("k", 1), /U\+0000/],
  [
    "a key builder that makes a 600-character key",
    (_s, t) => storageOn(t, { keyBuilder: (k) => k.padEnd(600, "x") }).write("k", 1),
    /longer than 512/,
  ],
  ["a read of an empty key", (s) => s.read(""), /empty/],
  ["a delete of a key with U+0000", (s) => s.delete("\0"), /U\+0000/],
  ["a has() of a lone surrogate", (s) => s.has("\ud83d"), /surrogate/],
];

const badValues: BadInput[] = [
  ["undefined", (s) => s.write("k", undefined), /delete it/],
  ["a function", (s) => s.write("k", () => 1), /function/],
  ["a symbol", (s) => s.write("k", Symbol("x")), /symbol/],
  ["a BigInt", (s) => s.write("k", 10n), /BigInt/],
  ["a BigInt inside an object", (s) => s.write("k", { n: 1n }), /BigInt/],
  ["NaN", (s) => s.write("k", Number.NaN), /NaN/],
  ["NaN inside an array", (s) => s.write("k", [1, Number.NaN]), /NaN/],
  ["Infinity", (s) => s.write("k", { x: Number.POSITIVE_INFINITY }), /Infinity/],
  ["-Infinity", (s) => s.write("k", Number.NEGATIVE_INFINITY), /Infinity/],
  ["a function inside an object", (s) => s.write("k", { step: "x", run: () => 1 }), /function/],
  ["a symbol inside an array", (s) => s.write("k", [Symbol("x")]), /symbol/],
  ["a cyclic object", (s) => s.write("k", cyclic()), /cycles|circular/i],
  ["nesting 100,000 deep", (s) => s.write("k", deeplyNested(100_000)), /cannot be encoded/],
  ["an invalid Date under JSON", (s) => s.write("k", { at: new Date(Number.NaN) }), /cannot be encoded/],
  [
    "a codec returning undefined",
    (_s, t) => storageOn(t, { codec: codecOf(() => undefined) }).write("k", 1),
    /not a string/,
  ],
  ["a codec returning a number", (_s, t) => storageOn(t, { codec: codecOf(() => 5) }).write("k", 1), /not a string/],
  [
    "a codec returning a Buffer",
    (_s, t) => storageOn(t, { codec: codecOf(() => Buffer.from("{}")) }).write("k", 1),
    /not a string/,
  ],
  [
    "a codec returning text that is not JSON",
    (_s, t) => storageOn(t, { codec: codecOf(() => "{nope") }).write("k", 1),
    /must be JSON/,
  ],
  [
    "a codec returning two JSON documents",
    (_s, t) => storageOn(t, { codec: codecOf(() => "{} {}") }).write("k", 1),
    /must be JSON/,
  ],
  [
    "a codec that throws",
    (_s, t) =>
      storageOn(t, {
        codec: codecOf(() => {
          throw new Error("codec broke");
        }),
      }).write("k", 1),
    /codec broke/,
  ],
  [
    "a value failing the schema",
    (_s, t) => storageOn(t, { schema: z.object({ intact: z.boolean() }) }).write("k", { intact: "yes" }),
    /fails the schema/,
  ],
  ["an update() patch that is an array", (s) => s.update("k", [1] as never), /takes a plain object/],
  ["an update() patch that is null", (s) => s.update("k", null as never), /takes a plain object/],
  ["an update() patch with NaN", (s) => s.update("k", { n: Number.NaN } as never), /NaN/],
];

const badOptions: [string, () => unknown, RegExp][] = [
  ["an empty table name", () => storageOn(""), /non-empty/],
  ["a table name with a quote", () => storageOn('a"b'), /not allowed/],
  ["a table name with a semicolon", () => storageOn("a;drop table x"), /not allowed/],
  ["a table name with a space", () => storageOn("my sessions"), /not allowed/],
  ["a table name with U+0000", () => storageOn("a\0"), /not allowed/],
  ["a table name with three parts", () => storageOn("a.b.c"), /more than one dot/],
  ["a table name of 64 characters", () => storageOn("t".repeat(64)), /too long/],
  ["a table name of 1 MB", () => storageOn("t".repeat(1_000_000)), /too long|not allowed/],
  ["a table name that is not ASCII", () => storageOn("sessions_ü"), /not allowed/],
  ["a negative TTL", () => storageOn("t", { millisecondsToLive: -1 }), /positive number/],
  ["an infinite TTL", () => storageOn("t", { millisecondsToLive: Number.POSITIVE_INFINITY }), /positive number/],
  ["a TTL that is a string", () => storageOn("t", { millisecondsToLive: "60000" as never }), /positive number/],
];

let pool: import("pg").Pool;
function storageOn(
  tableName: string,
  options: Partial<ConstructorParameters<typeof PostgresStorage<unknown>>[0]> = {},
) {
  return new PostgresStorage<unknown>({ client: pool, tableName, ...options });
}

describe("hostile and broken input", () => {
  const db = useFixture();

  it("the catalogue has at least 40 bad inputs", () => {
    expect(badKeys.length + badValues.length + badOptions.length).toBeGreaterThanOrEqual(40);
  });

  describe.each([
    ["keys", badKeys],
    ["values", badValues],
  ] as const)("bad %s: a clear error naming the problem, and the previous value intact", (_kind, catalogue) => {
    it.each(catalogue)("%s", async (_label, attempt, problem) => {
      pool = db.pool;
      const table = db.table("hostile");
      const storage = storageOn(table);
      await storage.write("k", GOOD);
      const before = await db.admin(`SELECT key, value::text AS value, updated_at FROM "${table}" ORDER BY key`);
      const error = await attempt(storage, table).then(
        () => new Error("it was accepted"),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect((error as Error).message).toMatch(problem);
      expect(await storage.read("k")).toStrictEqual(GOOD);
      expect(await db.admin(`SELECT key, value::text AS value, updated_at FROM "${table}" ORDER BY key`)).toStrictEqual(
        before,
      );
    });
  });

  describe("bad options: refused when the storage is made, before any SQL", () => {
    it.each(badOptions)("%s", (_label, make, problem) => {
      pool = db.pool;
      expect(make).toThrow(PostgresStorageError);
      expect(make).toThrow(problem);
    });
  });

  describe("awkward but valid input round-trips intact", () => {
    const values: [string, unknown][] = [
      ["U+0000 inside a string", { text: "before\0after", alone: "\0" }],
      ["every control character", { text: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("") }],
      [
        "a key named __proto__",
        JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}'),
      ],
      ["astral characters and combining marks", { text: "𝕳𝖊𝖑𝖑𝖔 👩🏽‍🚀 e\u0301 \u202e" }],
      ["nesting 1,000 deep", deeplyNested(1_000)],
      ["-0 (stored as 0)", { n: -0 }],
      [
        "numbers at the edges of precision",
        { max: Number.MAX_SAFE_INTEGER, min: Number.MIN_VALUE, big: 1.7976931348623157e308 },
      ],
      // PGlite's socket server re-buffers every incoming chunk, so 50 MB would take minutes there.
      [
        inject("backend") === "pglite" ? "a 5 MB string (50 MB on a PostgreSQL server)" : "a 50 MB string",
        { big: "x".repeat((inject("backend") === "pglite" ? 5 : 50) * 1024 * 1024) },
      ],
    ];
    it.each(values)("%s", async (label, value) => {
      pool = db.pool;
      const storage = storageOn(db.table("awkward"));
      await storage.write("k", value);
      const read = await storage.read("k");
      // Compared as JSON text: an own "constructor" property trips up structural equality.
      expect(JSON.stringify(read)).toBe(JSON.stringify(label.startsWith("-0") ? { n: 0 } : value));
      if (label.startsWith("-0")) expect(Object.is((read as { n: number }).n, 0)).toBe(true);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.getPrototypeOf(read)).toBe(Array.isArray(read) ? Array.prototype : Object.prototype);
    });

    it("keys with quotes, backslashes, SQL and 512 characters", async () => {
      pool = db.pool;
      const storage = storageOn(db.table("awkward_keys"));
      const keys = ["'", '"', "\\", "%", "_", "' OR '1'='1", "k".repeat(512), "ключ", "🔑", " spaced ", "\n\t"];
      for (const [i, key] of keys.entries()) await storage.write(key, i);
      for (const [i, key] of keys.entries()) expect(await storage.read(key)).toBe(i);
    });
  });

  describe("no SQL injection through table name, key, value, prefix or patch", () => {
    const payloads = [
      "'; DROP TABLE canary; --",
      '"; DROP TABLE canary; --',
      "x'); DELETE FROM canary; --",
      "1 OR 1=1",
      "$1",
      "$$; DROP TABLE canary; $$",
      "\\'; DROP TABLE canary; --",
      "'||(SELECT pg_sleep(5))||'",
      "*/ DROP TABLE canary /*",
    ];

    it("leaves the database untouched whatever the payload", async () => {
      pool = db.pool;
      const canary = db.table("canary");
      await db.admin(`CREATE TABLE "${canary}" (id int); INSERT INTO "${canary}" VALUES (1), (2), (3)`);
      const table = db.table("injection");
      await storageOn(table).createTable();
      for (const payload of payloads) {
        expect(() => storageOn(payload.replace("canary", canary))).toThrow(PostgresStorageError);
        const prefixed = storageOn(table, { keyBuilder: prefixKeys(payload.replace(/canary/g, canary)) });
        const plain = storageOn(table);
        const evil = payload.replace(/canary/g, canary);
        await prefixed.write(evil, { evil });
        await plain.write(evil, evil);
        await plain.update(`${evil}-patched`, { [evil]: evil });
        expect(await prefixed.read(evil)).toStrictEqual({ evil });
        expect(await plain.read(evil)).toBe(evil);
        expect(await plain.read(`${evil}-patched`)).toStrictEqual({ [evil]: evil });
        for await (const key of prefixed.readAllKeys()) expect(typeof key).toBe("string");
      }
      expect(await db.admin(`SELECT id FROM "${canary}" ORDER BY id`)).toStrictEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
      // No table named after a payload, or any part of one, was created: other suites create tables meanwhile, so
      // the tables are told apart by name, not counted.
      const made = await db.admin(
        "SELECT tablename FROM pg_tables WHERE tablename ~ '(DROP TABLE|DELETE FROM|OR 1=1|pg_sleep|\\$\\$|--)'",
      );
      expect(made).toStrictEqual([]);
      expect(createTableSql(table)).toContain(`"${table}"`);
    });
  });
});
