import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PostgresStorageError, prefixKeys, type KeyBuilder } from "../../src/index.js";
import { optionError } from "../support/refusals.js";

describe("prefixKeys", () => {
  it("refuses a prefix that contains its separator, which could make its keys another prefix's", () => {
    // "shop" + ":" + "eu:42" and "shop:eu" + ":" + "42" would be one row.
    expect(() => prefixKeys("shop:eu")).toThrow(PostgresStorageError);
    expect(() => prefixKeys("shop:eu")).toThrow(/contains the separator ":".*such as "shop-eu"/);
    expect(() => prefixKeys("a/b", "/")).toThrow(/contains the separator "\/"/);
    expect(() => prefixKeys("shop:eu", "/").build("42")).not.toThrow();
  });

  it("names the prefix as the option refused, and suggests one with another character", () => {
    const error = optionError(() => prefixKeys("shop:eu"));
    expect(error.option).toBe("prefix");
    expect(error.message).toBe(
      'prefixKeys: the prefix "shop:eu" contains the separator ":", so its keys could be another prefix\'s keys; ' +
        'use a prefix without it, such as "shop-eu"',
    );
    // The suggestion never contains the separator itself.
    expect(optionError(() => prefixKeys("shop-eu-1", "-")).message).toMatch(/such as "shop_eu_1"$/);
    expect(optionError(() => prefixKeys("a::b", "::")).message).toMatch(/such as "a-b"$/);
  });

  it("refuses an empty prefix or separator", () => {
    expect(() => prefixKeys("")).toThrow(/non-empty/);
    expect(() => prefixKeys("shop", "")).toThrow(/non-empty/);
  });

  it("refuses a prefix or separator that is no string, naming which", () => {
    for (const [args, option] of [
      [[""], "prefix"],
      [[5], "prefix"],
      [[undefined], "prefix"],
      [["shop", ""], "separator"],
      [["shop", 5], "separator"],
      [["shop", null], "separator"],
    ] as const) {
      const error = optionError(() => (prefixKeys as (...a: unknown[]) => unknown)(...args));
      expect(error.option).toBe(option);
      expect(error.message).toBe("prefixKeys(prefix, separator) takes two non-empty strings");
    }
  });

  it("refuses a prefix that ends with how a separator that overlaps itself begins (issue 20)", () => {
    // "bot" + "--" + "-1001234567" (a group's chat id) and "bot-" + "--" + "1001234567" were one row.
    expect(prefixKeys("bot", "--").build("-1001234567")).toBe("bot---1001234567");
    const error = optionError(() => prefixKeys("bot-", "--"));
    expect(error.option).toBe("prefix");
    expect(error.message).toBe(
      'prefixKeys: the prefix "bot-" ends with "-", which is how the separator "--" begins, so its keys could be ' +
        'another prefix\'s keys: "bot-" with key "1" and "bot" with key "-1" are both stored as "bot---1"; use a prefix ' +
        'that does not end so, such as "bot_", or a one-character separator such as ":"',
    );
    expect(optionError(() => prefixKeys("bot:", "::")).message).toMatch(/ends with ":".*such as "bot-"/);
    expect(optionError(() => prefixKeys("bot_", "__")).message).toMatch(/ends with "_".*such as "bot-"/);
    // A separator with a border longer than one character: "-:-" repeats after "-:".
    expect(optionError(() => prefixKeys("a-:", "-:-")).message).toMatch(
      /ends with "-:".*"a-:" with key "1" and "a" with key ":-1" are both stored as "a-:-:-1"/,
    );
    expect(optionError(() => prefixKeys("xab", "aba")).message).toMatch(/ends with "ab"/);
    // What only looks like the separator's start but cannot begin another one is fine.
    expect(prefixKeys("a-", "-:-").build("1")).toBe("a--:-1");
    expect(prefixKeys("xa", "ab").build("1")).toBe("xaab1");
  });

  it("accepts the separator at the very start of a prefix, where no shorter prefix ends", () => {
    expect(prefixKeys(":a").build("1")).toBe(":a:1");
    expect(prefixKeys("-", "--").build("1")).toBe("---1");
    expect(prefixKeys("ab", "aba").build("1")).toBe("ababa1");
  });

  it("every suggested prefix is one it accepts", () => {
    const alphabet = fc.constantFrom("-", ":", "a", "b", "_", ".", "0");
    fc.assert(
      fc.property(
        fc.string({ unit: alphabet, minLength: 1, maxLength: 8 }),
        fc.string({ unit: alphabet, minLength: 1, maxLength: 4 }),
        (prefix, separator) => {
          let message: string;
          try {
            prefixKeys(prefix, separator);
            return;
          } catch (error) {
            message = (error as Error).message;
          }
          const suggested = /such as ("(?:[^"\\]|\\.)*")(?:, or|$)/.exec(message)?.[1];
          if (suggested !== undefined) expect(() => prefixKeys(JSON.parse(suggested), separator)).not.toThrow();
          const other = /one-character separator such as (".")$/.exec(message)?.[1];
          if (other !== undefined) expect(() => prefixKeys(prefix, JSON.parse(other))).not.toThrow();
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("exhaustively: two accepted prefixes never meet, and each refused one meets an accepted one", () => {
    // Every prefix of up to 5 characters and separator of up to 3 over a 3-letter alphabet. Two prefixes meet
    // (some keys build one stored key, or one's parse claims the other's key) exactly when one's
    // prefix + separator starts the other's.
    const words = (length: number): string[] =>
      length === 0 ? [""] : words(length - 1).flatMap((word) => ["a", "b", "-"].map((char) => word + char));
    const upTo = (max: number) => Array.from({ length: max }, (_, i) => words(i + 1)).flat();
    const accepts = (prefix: string, separator: string) => {
      try {
        prefixKeys(prefix, separator);
        return true;
      } catch {
        return false;
      }
    };
    for (const separator of upTo(3)) {
      const accepted = upTo(5).filter((prefix) => accepts(prefix, separator));
      const starts = new Set(accepted.map((prefix) => prefix + separator));
      for (const prefix of upTo(5)) {
        const start = prefix + separator;
        // The accepted starts that are a proper prefix of this one: the ones it meets.
        const meets = Array.from({ length: start.length - 1 }, (_, i) => start.slice(0, i + 1)).some((head) =>
          starts.has(head),
        );
        if (accepts(prefix, separator)) expect(meets, `${prefix} ${separator}`).toBe(false);
        else expect(meets, `${prefix} ${separator}`).toBe(true);
      }
    }
  });

  it("keys of two accepted prefixes with one separator never meet, whatever the separator (issue 20)", () => {
    const alphabet = fc.constantFrom("-", ":", "a", "b");
    const separator = fc.oneof(
      fc.constantFrom(":", "--", "::", "__", "-:-", "aba", "abab", "-a-", "::::"),
      fc.string({ unit: alphabet, minLength: 1, maxLength: 4 }),
    );
    const text = (min: number) => fc.string({ unit: alphabet, minLength: min, maxLength: 6 });
    fc.assert(
      fc.property(separator, text(1), text(0), text(1), text(1), (s, p1, extra, k1, k2) => {
        // The second prefix often extends the first, where meetings come from.
        for (const p2 of [p1 + extra, extra, p1 + s.slice(0, extra.length % (s.length + 1))]) {
          if (p2 === "" || p2 === p1) continue;
          let a: KeyBuilder;
          let b: KeyBuilder;
          try {
            [a, b] = [prefixKeys(p1, s), prefixKeys(p2, s)];
          } catch {
            continue;
          }
          for (const [x, y] of [
            [a, b],
            [b, a],
          ] as const) {
            expect(x.build(k1)).not.toBe(y.build(k2));
            expect(x.parse?.(x.build(k1))).toBe(k1);
            expect(y.parse?.(x.build(k1))).toBeUndefined();
          }
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("keys of two different prefixes with one separator never meet, and parse back", () => {
    const prefix = fc.string({ minLength: 1, maxLength: 6 }).filter((p) => !p.includes(":"));
    fc.assert(
      fc.property(prefix, prefix, fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), (p1, p2, k1, k2) => {
        fc.pre(p1 !== p2);
        const [a, b] = [prefixKeys(p1), prefixKeys(p2)];
        expect(a.build(k1)).not.toBe(b.build(k2));
        expect(a.parse?.(a.build(k1))).toBe(k1);
        expect(b.parse?.(a.build(k1))).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
});
