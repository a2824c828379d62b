import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PostgresStorageError, prefixKeys } from "../../src/index.js";

describe("prefixKeys", () => {
  it("refuses a prefix that contains its separator, which could make its keys another prefix's", () => {
    // "shop" + ":" + "eu:42" and "shop:eu" + ":" + "42" would be one row.
    expect(() => prefixKeys("shop:eu")).toThrow(PostgresStorageError);
    expect(() => prefixKeys("shop:eu")).toThrow(/contains the separator ":".*such as "shop-eu"/);
    expect(() => prefixKeys("a/b", "/")).toThrow(/contains the separator "\/"/);
    expect(() => prefixKeys("shop:eu", "/").build("42")).not.toThrow();
  });

  it("refuses an empty prefix or separator", () => {
    expect(() => prefixKeys("")).toThrow(/non-empty/);
    expect(() => prefixKeys("shop", "")).toThrow(/non-empty/);
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
