import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyContext, normalizeKeyBuilder, prefixUpperBound, storedKey } from "../../src/keys.js";
import { optionError } from "../support/refusals.js";

// The key checks and the key range of a prefix, without a database.
describe("storedKey", () => {
  const plain = normalizeKeyBuilder(undefined);

  it("passes a key through the builder", () => {
    expect(storedKey(plain, "42")).toBe("42");
    expect(
      storedKey(
        normalizeKeyBuilder((key) => `bot:${key}`),
        "42",
      ),
    ).toBe("bot:42");
    const at = keyContext(
      normalizeKeyBuilder((key) => `bot:${key}`),
      "42",
    );
    expect({ key: at.key, grammyKey: at.grammyKey }).toStrictEqual({ key: "bot:42", grammyKey: "42" });
  });

  it.each([
    ["an empty key", "", /session keys must be strings, got an empty one; check getSessionKey/],
    ["null", null, /got null/],
    ["a number", 42, /got number/],
    ["undefined", undefined, /got undefined/],
  ])("refuses %s as a bad argument: a StorageOptionError of option key", (_label, key, message) => {
    const error = optionError(() => storedKey(plain, key));
    expect(error.option).toBe("key");
    expect(error.message).toMatch(message);
  });

  it("refuses what the builder makes of a key when it is not a string", () => {
    expect(() =>
      storedKey(
        normalizeKeyBuilder(() => 5 as never),
        "k",
      ),
    ).toThrow('keyBuilder.build("k") returned number, not a string');
    expect(
      optionError(() =>
        storedKey(
          normalizeKeyBuilder(() => 5 as never),
          "k",
        ),
      ).option,
    ).toBe("keyBuilder");
  });

  it.each([
    ["U+0000", "a\0b", "contains U+0000"],
    ["a lone high surrogate", "a\ud800", "contains a lone surrogate"],
    ["a lone low surrogate", "\udc00b", "contains a lone surrogate"],
    ["513 characters", "k".repeat(513), "is longer than 512 characters"],
  ])("refuses a stored key with %s, which would not be stored as it is", (_label, key, problem) => {
    expect(() => storedKey(plain, key)).toThrow(`is refused: stored, it ${problem}`);
    expect(optionError(() => storedKey(plain, key)).option).toBe("key");
  });

  it("accepts 512 characters, and surrogate pairs (characters beyond U+FFFF)", () => {
    expect(storedKey(plain, "k".repeat(512))).toHaveLength(512);
    expect(storedKey(plain, "🤖:42")).toBe("🤖:42");
    // 512 UTF-16 units with a surrogate pair among them, and one more.
    const withPair = `🤖${"k".repeat(510)}`;
    expect(storedKey(plain, withPair)).toBe(withPair);
    expect(() => storedKey(plain, `${withPair}k`)).toThrow("is longer than 512 characters");
  });

  it.each([
    ["U+0000", "\0", "contains U+0000"],
    ["a lone high surrogate", "\ud800", "contains a lone surrogate"],
    ["a lone low surrogate", "\udfff", "contains a lone surrogate"],
  ])("refuses a stored key that is nothing but %s", (_label, key, problem) => {
    expect(() => storedKey(plain, key)).toThrow(`is refused: stored, it ${problem}`);
  });

  it("cuts a long key short in its refusal", () => {
    expect(() => storedKey(plain, `${"k".repeat(600)}`)).toThrow(
      `key "${"k".repeat(60)}…" is refused: stored, it is longer than 512 characters`,
    );
  });

  it("refuses a key builder of the wrong kind as an option", () => {
    for (const option of [5, "bot", null, {}, { build: "x" }, [(key: string) => key]]) {
      const error = optionError(() => normalizeKeyBuilder(option as never));
      expect(error.option).toBe("keyBuilder");
      expect(error.message).toBe(
        'keyBuilder must be a function (key) => storedKey or { build(key), parse?(storedKey) }, e.g. prefixKeys("bot")',
      );
    }
    expect(normalizeKeyBuilder((key) => key).parse).toBeUndefined();
  });

  it("without a key builder, stores keys as they are and parses them back as they are", () => {
    const keys = normalizeKeyBuilder(undefined);
    expect(keys.build("chat:42")).toBe("chat:42");
    expect(keys.parse?.("chat:42")).toBe("chat:42");
    expect(keys.prefix).toBeUndefined();
  });

  it("takes a KeyBuilder object as it is, with its parse and prefix", () => {
    const keys = { build: (key: string) => `b:${key}`, parse: (stored: string) => stored.slice(2), prefix: "b:" };
    expect(normalizeKeyBuilder(keys)).toBe(keys);
    const buildOnly = { build: (key: string) => key };
    expect(normalizeKeyBuilder(buildOnly)).toBe(buildOnly);
  });
});

describe("prefixUpperBound", () => {
  it("is the prefix with its last character raised by one", () => {
    expect(prefixUpperBound("bot:")).toBe("bot;");
    expect(prefixUpperBound("a")).toBe("b");
  });

  it("steps over the surrogates, and drops characters that cannot be raised", () => {
    expect(prefixUpperBound("a\ud7ff")).toBe("a\ue000");
    // Never a lone surrogate, even from one.
    expect(prefixUpperBound("a\udffe")).toBe("a\ue000");
    expect(prefixUpperBound("a\ud800")).toBe("a\ue000");
    expect(prefixUpperBound("a\u{10fffe}")).toBe("a\u{10ffff}");
    expect(prefixUpperBound("a\u{10ffff}")).toBe("b");
    expect(prefixUpperBound("\u{10ffff}\u{10ffff}")).toBeUndefined();
    expect(prefixUpperBound("")).toBeUndefined();
  });

  it('bounds exactly the keys that start with the prefix, in code point order (how COLLATE "C" sorts UTF-8)', () => {
    const codePoints = (text: string) => Array.from(text, (char) => char.codePointAt(0) ?? 0);
    const before = (a: string, b: string) => {
      const [x, y] = [codePoints(a), codePoints(b)];
      for (let i = 0; i < Math.min(x.length, y.length); i += 1) if (x[i] !== y[i]) return (x[i] ?? 0) < (y[i] ?? 0);
      return x.length < y.length;
    };
    const text = fc.string({ unit: "grapheme", maxLength: 4 });
    fc.assert(
      fc.property(
        text.filter((prefix) => prefix !== ""),
        text,
        fc.boolean(),
        (prefix, rest, prefixed) => {
          const key = prefixed ? prefix + rest : rest;
          const upper = prefixUpperBound(prefix);
          const inRange = !before(key, prefix) && (upper === undefined || before(key, upper));
          expect(inRange).toBe(key.startsWith(prefix));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
