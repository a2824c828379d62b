import { describe, expect, it } from "vitest";
import {
  KeyContext,
  checkCodec,
  toStrictJson,
  decode,
  encode,
  isMergeable,
  strictJson,
  type Codec,
} from "../../src/codec.js";
import { jsonWithDates } from "../../src/dates-codec.js";
import { PostgresStorageError } from "../../src/errors.js";
import { optionError } from "../support/refusals.js";
import { stringifyRefusal } from "../support/refusals.js";

// The codec option, and how values are encoded and decoded around a codec, without a database.
const at = new KeyContext("42", "bot:42");

/** What `run` threw or rejected with (encode and decode throw at once for a codec that answers at once); fails when it resolves. */
async function rejection(run: () => unknown): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("it resolved");
}

function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
}

describe("checkCodec", () => {
  it("passes a codec with stringify and parse through as it is", () => {
    const own: Codec = { stringify: (value) => JSON.stringify(value), parse: (text) => JSON.parse(text) };
    for (const codec of [JSON, strictJson, jsonWithDates, own]) expect(checkCodec(codec)).toBe(codec);
  });

  it.each([
    ["undefined", undefined],
    ["null", null],
    ["an empty object", {}],
    ["no parse", { stringify: JSON.stringify }],
    ["no stringify", { parse: JSON.parse }],
    ["a stringify that is no function", { stringify: "JSON", parse: JSON.parse }],
    ["a parse that is no function", { stringify: JSON.stringify, parse: true }],
  ])("refuses %s as the codec option", (_label, codec) => {
    const error = optionError(() => checkCodec(codec as never));
    expect(error.option).toBe("codec");
    expect(error.message).toBe("codec must have stringify(value) and parse(text), as JSON and superjson do");
  });
});

describe("isMergeable", () => {
  it("is true for JSON and for the codecs that say so: the default and jsonWithDates", () => {
    expect(strictJson.mergeable).toBe(true);
    expect(jsonWithDates.mergeable).toBe(true);
    expect(isMergeable(JSON)).toBe(true);
    expect(isMergeable(strictJson)).toBe(true);
    expect(isMergeable(jsonWithDates)).toBe(true);
    expect(isMergeable({ stringify: JSON.stringify, parse: JSON.parse, mergeable: true })).toBe(true);
  });

  it("is false for a codec that does not say so, or says it loosely", () => {
    expect(isMergeable({ stringify: JSON.stringify, parse: JSON.parse })).toBe(false);
    expect(isMergeable({ stringify: JSON.stringify, parse: JSON.parse, mergeable: false })).toBe(false);
    expect(isMergeable({ stringify: JSON.stringify, parse: JSON.parse, mergeable: "yes" as never })).toBe(false);
  });
});

describe("encode", () => {
  it("answers the codec's text, and gives the codec the stored key", async () => {
    const seen: unknown[] = [];
    const codec: Codec = {
      stringify(value, context) {
        seen.push((context as KeyContext).key);
        return JSON.stringify(value);
      },
      parse: JSON.parse,
    };
    expect(await encode(codec, { a: 1 }, at)).toBe('{"a":1}');
    expect(seen).toStrictEqual(["bot:42"]);
  });

  it("waits for a codec that answers a promise, or any thenable", async () => {
    const later: Codec = { stringify: async (value) => JSON.stringify(value), parse: JSON.parse };
    expect(await encode(later, [1], at)).toBe("[1]");
    const thenable: Codec = {
      stringify: (value) =>
        ({ then: (resolve: (text: string) => void) => resolve(JSON.stringify(value)) }) as PromiseLike<string>,
      parse: JSON.parse,
    };
    expect(await encode(thenable, [2], at)).toBe("[2]");
  });

  it("refuses what JSON cannot encode, keeping JSON's words and pointing to the codecs that can", async () => {
    const error = await rejection(() => encode(JSON, { balance: 10n }, at));
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect(error.message).toBe(
      'nothing was written: the value for key "42" cannot be encoded (Do not know how to serialize a BigInt); ' +
        "superjson and devalue store more types than JSON (BigInt, Map, cycles)",
    );
    expect(error.cause).toBeInstanceOf(TypeError);
  });

  it("refuses what another codec cannot encode with the codec's own words, which name the codec to use", async () => {
    const error = await rejection(() => encode(strictJson, { balance: 10n }, at));
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect(error.message).toBe(
      'nothing was written: the value for key "42" cannot be encoded (value.balance is a BigInt, which JSON cannot ' +
        "store; use superjson or devalue, which keep Map, Set, Date and BigInt)",
    );
    expect((error.cause as Error).message).toMatch(/^value\.balance is a BigInt/);
  });

  it("refuses a codec's rejected promise the same way", async () => {
    const failing = new Error("no key");
    const codec: Codec = { stringify: () => Promise.reject(failing), parse: JSON.parse };
    const error = await rejection(() => encode(codec, 1, at));
    expect(error.message).toBe('nothing was written: the value for key "42" cannot be encoded (no key)');
    expect(error.cause).toBe(failing);
  });

  it.each([
    ["undefined", undefined, "undefined, not a string (to remove a session, delete it)"],
    ["null", null, "null, not a string"],
    ["a number", 5, "number, not a string"],
    ["an object", { text: "{}" }, "object, not a string"],
  ])("refuses %s from the codec, which is no text to store", async (_label, result, end) => {
    for (const stringify of [() => result, async () => result]) {
      const error = await rejection(() => encode({ stringify, parse: JSON.parse } as never, { a: 1 }, at));
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect(error.message).toBe(`nothing was written: the codec turned the value for key "42" into ${end}`);
    }
  });

  it("says to delete a session when the default codec is given undefined", async () => {
    const error = await rejection(() => encode(strictJson, undefined, at));
    expect(error.message).toMatch(/into undefined, not a string \(to remove a session, delete it\)$/);
  });

  it("shows a long grammY key cut short", async () => {
    const key = "k".repeat(80);
    const error = await rejection(() => encode(JSON, 1n, new KeyContext(key, `bot:${key}`)));
    expect(error.message).toContain(`for key "${"k".repeat(60)}…" cannot be encoded`);
  });
});

describe("decode", () => {
  it("answers what the codec parsed, and gives the codec the stored key", async () => {
    const seen: unknown[] = [];
    const codec: Codec = {
      stringify: JSON.stringify,
      parse(text, context) {
        seen.push((context as KeyContext).key);
        return JSON.parse(text);
      },
    };
    expect(await decode(codec, '{"a":[1]}', at)).toStrictEqual({ a: [1] });
    expect(seen).toStrictEqual(["bot:42"]);
  });

  it("waits for a codec that answers a promise", async () => {
    const later: Codec = { stringify: JSON.stringify, parse: async (text) => JSON.parse(text) };
    expect(await decode(later, "[1]", at)).toStrictEqual([1]);
  });

  it("refuses text the codec cannot read as an error, never as a missing value", async () => {
    const error = await rejection(() => decode(JSON, "not json", at));
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect(error.message).toBe(
      `the stored value for key "42" cannot be decoded (Unexpected token 'o', "not json" is not valid JSON); ` +
        "written with another codec or secret? The row is unchanged",
    );
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it("refuses a codec's rejected promise the same way", async () => {
    const failing = new Error("wrong secret");
    const codec: Codec = { stringify: JSON.stringify, parse: () => Promise.reject(failing) };
    const error = await rejection(() => decode(codec, "x", at));
    expect(error.message).toMatch(/^the stored value for key "42" cannot be decoded \(wrong secret\); written with/);
    expect(error.cause).toBe(failing);
  });
});

describe("toStrictJson", () => {
  it("writes Dates in jsonWithDates' form only when asked to", () => {
    expect(toStrictJson({ a: [1, { b: new Date(0) }] }, true)).toBe(
      '{"a":[1,{"b":{"$date":"1970-01-01T00:00:00.000Z"}}]}',
    );
    expect(toStrictJson(new Date(0), true)).toBe('{"$date":"1970-01-01T00:00:00.000Z"}');
    expect(() => toStrictJson(new Date(0))).toThrow(/^value is a Date/);
    expect(toStrictJson({ a: [1, { b: "2024-01-01" }] }, true)).toBe('{"a":[1,{"b":"2024-01-01"}]}');
    for (const value of ["text", 1, true, null]) expect(toStrictJson(value, true)).toBe(JSON.stringify(value));
    expect(toStrictJson(undefined)).toBeUndefined();
  });
});

describe("refusals", () => {
  it("refuses nesting of more than 2000 levels, and accepts 2000", () => {
    expect(strictJson.stringify(nested(2000))).toBe(JSON.stringify(nested(2000)));
    expect(stringifyRefusal(strictJson, nested(2001))).toMatch(/ is nested 2000 levels deep; store it flatter$/);
  });

  it("names a Date subclass, and what it would read back as with each codec", () => {
    class Birthday extends Date {}
    expect(stringifyRefusal(strictJson, { at: new Birthday(0) })).toBe(
      "value.at is a Birthday (a Date subclass), which reads back as a string; store a plain Date",
    );
    expect(stringifyRefusal(jsonWithDates, { at: new Birthday(0) })).toBe(
      "value.at is a Birthday (a Date subclass), which reads back as a Date; store a plain Date",
    );
  });

  it("names an object of an anonymous class, or whose prototype is a function, as one with a custom prototype", () => {
    const Anonymous = (() => class {})();
    expect(Anonymous.name).toBe("");
    expect(stringifyRefusal(strictJson, { x: new Anonymous() })).toMatch(
      /^value\.x is an object with a custom prototype,/,
    );
    expect(stringifyRefusal(strictJson, { x: Object.create(Function.prototype) })).toMatch(
      /^value\.x is an object with a custom prototype,/,
    );
  });

  it("never runs a getter on a prototype's constructor to name it", () => {
    const proto = Object.defineProperty({}, "constructor", {
      get() {
        throw new Error("ran the getter");
      },
    });
    expect(stringifyRefusal(strictJson, { x: Object.create(proto) })).toMatch(
      /^value\.x is an object with a custom prototype, which JSON stores as a plain object/,
    );
  });

  it("names by its built-in kind an object whose prototype does not name its class", () => {
    expect(stringifyRefusal(strictJson, { list: Object.setPrototypeOf([1], null) })).toBe(
      "value.list is an Array (an Array subclass), which JSON stores as an Array; store a plain array",
    );
    const bytes = Object.setPrototypeOf(new Uint8Array(2), Object.create(Uint8Array.prototype));
    expect(stringifyRefusal(strictJson, { bytes })).toMatch(
      /^value\.bytes is a Uint8Array, which JSON stores as an object/,
    );
  });

  it("shows a property name of up to 40 characters whole, and cuts longer ones", () => {
    const name = `${"k".repeat(39)}z`;
    expect(stringifyRefusal(strictJson, { [name]: new Map() })).toMatch(new RegExp(`^value\\.${name} is a Map`));
    expect(stringifyRefusal(strictJson, { [`${name}!`]: new Map() })).toMatch(
      new RegExp(`^value\\["${name}…"\\] is a Map`),
    );
    const spaced = `${"a b".repeat(13)}c`;
    expect(spaced).toHaveLength(40);
    expect(stringifyRefusal(strictJson, { [spaced]: new Map() })).toMatch(
      new RegExp(`^value\\["${spaced}"\\] is a Map`),
    );
    expect(stringifyRefusal(strictJson, { [`${spaced}d`]: new Map() })).toMatch(
      new RegExp(`^value\\["${spaced}…"\\] is a Map`),
    );
  });

  it("shows a path of up to 12 steps whole, and a longer one as its first 6 and last 4", () => {
    const deep = (steps: number): unknown => {
      let value: unknown = new Map();
      for (let i = steps; i >= 1; i -= 1) value = i % 2 === 0 ? [value] : { [`k${i}`]: value };
      return value;
    };
    expect(stringifyRefusal(strictJson, deep(12))).toMatch(
      /^value\.k1\[0\]\.k3\[0\]\.k5\[0\]\.k7\[0\]\.k9\[0\]\.k11\[0\] is a Map/,
    );
    expect(stringifyRefusal(strictJson, deep(13))).toMatch(
      /^value\.k1\[0\]\.k3\[0\]\.k5\[0\]…\[0\]\.k11\[0\]\.k13 is a Map/,
    );
  });
});

describe("jsonWithDates.parse", () => {
  it("keeps nulls, wherever they are", () => {
    expect(jsonWithDates.parse('{"a":null,"b":[null,{"c":null}]}')).toStrictEqual({ a: null, b: [null, { c: null }] });
    expect(jsonWithDates.parse("null")).toBeNull();
  });

  it("reads only a string under $date as a Date", () => {
    expect(jsonWithDates.parse('{"x":{"$date":5}}')).toStrictEqual({ x: { $date: 5 } });
    expect(jsonWithDates.parse('{"x":{"$date":null}}')).toStrictEqual({ x: { $date: null } });
    expect(jsonWithDates.parse('{"x":{"$date":"1970-01-01T00:00:00.005Z"}}')).toStrictEqual({ x: new Date(5) });
  });
});
