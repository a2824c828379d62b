import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PostgresStorageError, prefixKeys } from "../../src/index.js";
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
