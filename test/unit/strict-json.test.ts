import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { strictJson } from "../../src/codec.js";
import { jsonWithDates } from "../../src/index.js";
import { stringifyRefusal } from "../support/refusals.js";

// Database-free: what the default codec and jsonWithDates refuse, how they say it, and what they keep exactly.

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}
class Stack extends Array<number> {}
class Birthday extends Date {}

function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
}

function cyclicObject(): unknown {
  const session: Record<string, unknown> = { step: "idle", user: { name: "Ada" } };
  (session.user as Record<string, unknown>).session = session;
  return session;
}

function cyclicArray(): unknown {
  const list: unknown[] = [1, 2];
  const session = { history: list };
  list.push({ back: list });
  return session;
}

const MORE = /use superjson or devalue, which keep Map, Set, Date and BigInt/;

/** A value, where the error must point, and what the error must suggest. */
const refused: [label: string, value: unknown, path: string, advice: RegExp][] = [
  ["a Map deep inside", { cart: { items: [1, 2, 3, new Map([["a", 1]])] } }, "value.cart.items[3] is a Map", MORE],
  ["a Set", { tags: new Set(["a"]) }, "value.tags is a Set", MORE],
  [
    "a Uint8Array",
    { file: new Uint8Array([1, 2]) },
    "value.file is a Uint8Array",
    /object of numbers; use superjson or devalue/,
  ],
  ["an ArrayBuffer", { raw: new ArrayBuffer(4) }, "value.raw is an ArrayBuffer", /use devalue/],
  [
    "a Date",
    { birthday: new Date("2000-01-01") },
    "value.birthday is a Date",
    /stores as a string; use jsonWithDates, superjson or devalue/,
  ],
  ["a Date as the whole value", new Date(0), "value is a Date", /jsonWithDates/],
  ["an invalid Date", { at: new Date(Number.NaN) }, "value.at is an invalid Date", /store null or a valid Date/],
  [
    "a class instance",
    { where: new Point(1, 2) },
    "value.where is a Point",
    /plain object; store one, or use superjson with registerClass/,
  ],
  [
    "an object with a custom prototype",
    { odd: Object.create({ a: 1 }) as object },
    "value.odd is an object with a custom prototype",
    /plain object/,
  ],
  [
    "an object with toJSON",
    { money: { amount: 1, toJSON: () => "1 EUR" } },
    "value.money has a toJSON method",
    /store plain data/,
  ],
  [
    "an object with a hidden toJSON",
    { money: Object.defineProperty({}, "toJSON", { value: () => "1 EUR" }) },
    "value.money has a toJSON method",
    /plain data/,
  ],
  [
    "a boxed String",
    { name: new String("Ada") },
    "value.name is a String object",
    /store the primitive string instead/,
  ],
  ["a boxed Number", [new Number(1)], "value[0] is a Number object", /store the primitive/],
  ["a RegExp", { pattern: /a+/g }, "value.pattern is a RegExp", /superjson or devalue/],
  ["an Error", { last: new TypeError("x") }, "value.last is a TypeError", /store its message/],
  ["a Promise (a missing await)", { user: Promise.resolve(1) }, "value.user is a Promise", /plain object/],
  [
    "undefined in an array",
    { list: [1, undefined] },
    "value.list[1] is undefined",
    /JSON stores in an array as null; use null, or devalue/,
  ],
  [
    "a hole in a sparse array",
    { list: [1, , 3] },
    "value.list[1] is a hole in a sparse array",
    /fill it, or use devalue/,
  ],
  [
    "an array subclass",
    { stack: Stack.from([1, 2]) },
    "value.stack is a Stack (an Array subclass)",
    /store a plain array/,
  ],
  ["a BigInt", { balance: 10n }, "value.balance is a BigInt", MORE],
  ["a BigInt as the whole value", 10n, "value is a BigInt", MORE],
  ["NaN", { score: Number.NaN }, "value.score is NaN", /stores as null; use superjson or devalue/],
  ["Infinity", { limit: Number.POSITIVE_INFINITY }, "value.limit is Infinity", /superjson or devalue/],
  ["-Infinity in an array", [Number.NEGATIVE_INFINITY], "value[0] is -Infinity", /superjson or devalue/],
  [
    "a function as a property",
    { step: "x", run: () => 1 },
    "value.run is a function",
    /JSON leaves out; store plain data/,
  ],
  ["a function in an array", { handlers: [() => 1] }, "value.handlers[0] is a function", /JSON stores as null/],
  ["a function as the whole value", () => 1, "value is a function", /cannot store/],
  ["a symbol as a property", { id: Symbol("id") }, "value.id is a symbol", /JSON leaves out/],
  ["a symbol in an array", [Symbol("id")], "value[0] is a symbol", /JSON stores as null/],
  [
    "a cycle through objects",
    cyclicObject(),
    "value.user.session is value again, a cycle",
    /; use devalue or superjson, which keep cycles/,
  ],
  ["a cycle through arrays", cyclicArray(), "value.history[2].back is value.history again, a cycle", /keep cycles/],
  ["a property name that is no identifier", { "a b": new Map() }, 'value["a b"] is a Map', MORE],
  ["a numeric property name", { 42: new Set() }, 'value["42"] is a Set', MORE],
  [
    "nesting 100,000 deep",
    nested(100_000),
    "value[0][0][0][0][0][0]…[0][0][0][0] is nested 2000 levels deep",
    /store it flatter/,
  ],
];

/** Values JSON gives back exactly; `undefined` properties read back as missing. */
const accepted: [label: string, value: unknown][] = [
  [
    "a typical session",
    {
      step: "checkout",
      count: 3,
      premium: false,
      cart: { items: [{ sku: "A", qty: 2, price: 9.99 }], coupon: null },
      history: ["a", "b"],
    },
  ],
  ["an undefined property", { step: "idle", draft: undefined, nested: { gone: undefined, kept: 1 } }],
  ["empty object and array", { object: {}, array: [] }],
  ["strings of every kind", { empty: "", control: "\0\n\t\u001f", astral: "𝕳 👩🏽‍🚀", quote: '"\\' }],
  [
    "numbers at the edges",
    { max: Number.MAX_SAFE_INTEGER, min: Number.MIN_VALUE, big: Number.MAX_VALUE, negative: -1.5, zero: 0 },
  ],
  ["a string as the whole value", "just text"],
  ["a number as the whole value", 42],
  ["a boolean as the whole value", true],
  ["null as the whole value", null],
  ["an array of mixed values", [1, "a", true, null, { a: [[]] }]],
  [
    "an object shared twice (not a cycle)",
    (() => {
      const shared = { a: 1 };
      return { x: shared, y: [shared, shared] };
    })(),
  ],
  ["nesting 1,000 deep", nested(1_000)],
  ["a key named constructor", { constructor: { prototype: 1 } }],
  ["keys that look like numbers", { 0: "a", 10: "b", "-1": "c" }],
];

describe("strictJson", () => {
  it.each(refused)("refuses %s, naming the path and the codec to use", (_label, value, path, advice) => {
    const message = stringifyRefusal(strictJson, value);
    expect(message.slice(0, path.length)).toBe(path);
    expect(message).toMatch(advice);
  });

  it.each(accepted)("keeps %s exactly", (_label, value) => {
    const text = strictJson.stringify(value) as string;
    // The walk only checks: the text is JSON's own.
    expect(text).toBe(JSON.stringify(value));
    // toEqual counts an undefined property as missing, as JSON does.
    expect(strictJson.parse(text)).toEqual(value);
  });

  it("stores -0 as 0, as JSON does: the one value it accepts and changes, documented", () => {
    // Math.round(-0.4) is -0: refusing it would refuse ordinary arithmetic. 0 === -0, so the change is rarely seen.
    expect(Object.is(Math.round(-0.4), -0)).toBe(true);
    expect(strictJson.stringify({ n: Math.round(-0.4) })).toBe('{"n":0}');
    expect(strictJson.stringify([-0])).toBe("[0]");
    expect(strictJson.stringify(-0)).toBe("0");
    expect(Object.is((strictJson.parse(strictJson.stringify({ n: -0 }) as string) as { n: number }).n, 0)).toBe(true);
    expect(jsonWithDates.stringify({ n: -0 })).toBe('{"n":0}');
  });

  it("reads each property once: a getter that answers differently is stored as it answered the check (issue 20)", () => {
    let calls = 0;
    const value = {
      get step() {
        calls += 1;
        // The first answer passes the check; a second read would store a Map as {}.
        return calls === 1 ? "checked" : new Map([["never", "checked"]]);
      },
      list: [1, 2],
    };
    expect(strictJson.stringify(value)).toBe('{"step":"checked","list":[1,2]}');
    expect(calls).toBe(1);
  });

  it("reads each property once: a refusal stands, and what a second read would answer never slips through", () => {
    let calls = 0;
    const value = {
      get balance() {
        calls += 1;
        // Refused at the first read; the old walk checked the first answer and stored the second.
        return calls === 1 ? 10n : 10;
      },
    };
    expect(stringifyRefusal(strictJson, value)).toMatch(/^value\.balance is a BigInt/);
    expect(calls).toBe(1);
    for (const codec of [strictJson, jsonWithDates]) {
      let reads = 0;
      const flipping = {
        get nested() {
          reads += 1;
          return reads === 1 ? { ok: true } : { ok: new Set() };
        },
      };
      expect(codec.stringify(flipping)).toBe('{"nested":{"ok":true}}');
      expect(reads).toBe(1);
    }
  });

  it("reads each property and element of a proxy once, toJSON included", () => {
    const reads = new Map<PropertyKey, number>();
    const counted = <T extends object>(label: string, target: T): T =>
      new Proxy(target, {
        get(object, key, receiver) {
          reads.set(`${label}.${String(key)}`, (reads.get(`${label}.${String(key)}`) ?? 0) + 1);
          return Reflect.get(object, key, receiver);
        },
      });
    const value = counted("value", { a: "x", toJSON: "not a method", list: counted("list", [1, "y", { z: null }]) });
    const text = strictJson.stringify(value);
    expect(text).toBe(JSON.stringify({ a: "x", toJSON: "not a method", list: [1, "y", { z: null }] }));
    const keys = ["value.a", "value.toJSON", "value.list", "list.0", "list.1", "list.2", "list.length", "list.toJSON"];
    for (const key of keys) expect(reads.get(key), key).toBe(1);
    expect([...reads.values()].every((count) => count === 1)).toBe(true);
  });

  it("writes exactly JSON.stringify's text for every value it accepts", () => {
    const values = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.object({
        maxDepth: 3,
        values: [fc.string({ unit: "binary" }), fc.double({ noNaN: true }), fc.constant(undefined)],
      }),
    );
    fc.assert(
      fc.property(values, (value) => {
        let text: unknown;
        try {
          text = strictJson.stringify(value);
        } catch {
          return;
        }
        expect(text).toBe(JSON.stringify(value));
      }),
      { numRuns: 3000 },
    );
  });

  it("writes a number as JSON does: String(n) is JSON's text for every finite number", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        expect(String(n)).toBe(JSON.stringify(n));
        expect(strictJson.stringify([n])).toBe(JSON.stringify([n]));
      }),
      { numRuns: 10000 },
    );
  });

  it("escapes strings as JSON does: quotes, backslashes, controls, lone surrogates, pairs kept", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.string({
          unit: fc.constantFrom('"', "\\", "\n", "\u0000", "\u001f", "\ud800", "\udfff", "😀", "a", "\u007f", "\u2028"),
        }),
        (a, b) => {
          const value = { [a + b]: b + a, list: [b] };
          expect(strictJson.stringify(value)).toBe(JSON.stringify(value));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("writes long strings as JSON does", () => {
    for (const text of ["a".repeat(600), `${"a".repeat(600)}"\n\ud800😀`, "😀".repeat(300)]) {
      expect(strictJson.stringify({ [text]: [text] })).toBe(JSON.stringify({ [text]: [text] }));
    }
  });

  it("leaves undefined as the whole value to the storage, which says to delete the session", () => {
    expect(strictJson.stringify(undefined)).toBeUndefined();
  });

  it("keeps an own __proto__ key as an own key, without touching any prototype", () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "step": "idle"}') as Record<string, unknown>;
    const text = strictJson.stringify(value) as string;
    expect(text).toBe('{"__proto__":{"polluted":true},"step":"idle"}');
    const back = strictJson.parse(text) as Record<string, unknown>;
    expect(Object.hasOwn(back, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(back, "__proto__")?.value).toStrictEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses a Map under an own __proto__ key, naming it", () => {
    const value = JSON.parse('{"__proto__": {}}') as Record<string, unknown>;
    Object.defineProperty(value, "__proto__", { value: new Map(), enumerable: true });
    expect(stringifyRefusal(strictJson, value)).toMatch(/^value.__proto__ is a Map/);
  });

  it("accepts an object without a prototype, which reads back as a plain object", () => {
    const bare = <T extends object>(properties: T): T => Object.assign(Object.create(null) as T, properties);
    const value = bare({ a: 1, inner: bare({ b: [2] }) });
    const back = strictJson.parse(strictJson.stringify(value) as string) as Record<string, unknown>;
    expect(back).toStrictEqual({ a: 1, inner: { b: [2] } });
  });

  it("ignores what JSON ignores: symbol keys, non-enumerable properties and array properties that are not elements", () => {
    const value: Record<string | symbol, unknown> = { a: 1, [Symbol("s")]: () => 1 };
    Object.defineProperty(value, "hidden", { value: new Map(), enumerable: false });
    const list = Object.assign([1, 2], { extra: new Set() });
    expect(strictJson.stringify(value)).toBe('{"a":1}');
    expect(strictJson.stringify(list)).toBe("[1,2]");
  });

  it("shortens long property names in the path", () => {
    const message = stringifyRefusal(strictJson, { ["k".repeat(100)]: new Map() });
    expect(message).toMatch(new RegExp(`^value\\["${"k".repeat(40)}…"\\] is a Map`));
  });

  it("reports a cycle that starts below the root from where it comes back", () => {
    const inner: Record<string, unknown> = { list: [] };
    (inner.list as unknown[]).push(inner);
    expect(stringifyRefusal(strictJson, { a: { b: inner } })).toMatch(
      /^value\.a\.b\.list\[0\] is value\.a\.b again, a cycle/,
    );
  });

  it("lets a getter that encodes another value run without disturbing the walk", () => {
    const value = {
      get inner() {
        return strictJson.stringify({ x: [1, { y: 2 }] });
      },
      after: { deep: [new Map()] },
    };
    expect(stringifyRefusal(strictJson, value)).toMatch(/^value\.after\.deep\[0\] is a Map/);
  });
});

describe("jsonWithDates", () => {
  it("keeps Dates, nested and in arrays, in its format", () => {
    const value = {
      at: new Date("2024-02-29T12:00:00.000Z"),
      list: [new Date(0), { when: new Date(1) }],
      text: "2024-02-29T12:00:00.000Z",
    };
    const text = jsonWithDates.stringify(value) as string;
    expect(text).toBe(
      '{"at":{"$date":"2024-02-29T12:00:00.000Z"},"list":[{"$date":"1970-01-01T00:00:00.000Z"},{"when":{"$date":"1970-01-01T00:00:00.001Z"}}],' +
        '"text":"2024-02-29T12:00:00.000Z"}',
    );
    expect(jsonWithDates.parse(text)).toStrictEqual(value);
  });

  it("keeps a Date as the whole value, and values without Dates as plain JSON", () => {
    expect(jsonWithDates.parse(jsonWithDates.stringify(new Date(5)) as string)).toStrictEqual(new Date(5));
    expect(jsonWithDates.stringify({ a: [1, "b"], c: undefined })).toBe('{"a":[1,"b"]}');
  });

  it("keeps objects that have $date among other keys", () => {
    const value = { x: { $date: "a", other: 1 } };
    expect(jsonWithDates.parse(jsonWithDates.stringify(value) as string)).toStrictEqual(value);
  });

  const refusedWithDates: [label: string, value: unknown, start: string][] = [
    ["an invalid Date", { at: new Date(Number.NaN) }, "value.at is an invalid Date"],
    [
      "an object whose only key is $date",
      { x: { $date: "2024-01-01" } },
      'value.x is an object whose only key is "$date"',
    ],
    [
      "an object whose only key JSON keeps is $date",
      { x: { $date: "2024-01-01", gone: undefined } },
      "value.x is an object whose only key",
    ],
    ["a Date subclass", { at: new Birthday(0) }, "value.at is a Birthday (a Date subclass)"],
    ["a Map", { at: new Date(0), m: new Map() }, "value.m is a Map"],
    ["NaN", { n: Number.NaN }, "value.n is NaN"],
    ["a BigInt", [1n], "value[0] is a BigInt"],
    ["a function", { f: () => 1 }, "value.f is a function"],
    ["a hole", [new Date(0), , 1], "value[1] is a hole"],
    ["a cycle", cyclicObject(), "value.user.session is value again"],
  ];
  it.each(refusedWithDates)("refuses %s, naming the path", (_label, value, start) => {
    expect(stringifyRefusal(jsonWithDates, value).slice(0, start.length)).toBe(start);
  });
});
