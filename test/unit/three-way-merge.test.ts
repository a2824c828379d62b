import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ABSENT, WHOLE_VALUE, mergeChange } from "../../src/three-way-merge.ts";

const text = (value: unknown) => JSON.stringify(value);
const merge = (base: unknown, ours: unknown, theirs: unknown, prefer: "ours" | "theirs" = "ours") =>
  mergeChange(base, ours, theirs, prefer, text);

describe("mergeChange: the change from base to ours, laid onto theirs", () => {
  it("keeps fields only theirs changed, takes fields only ours changed, in our order then theirs'", async () => {
    const base = { a: 1, b: 1, c: 1 };
    const ours = { a: 2, b: 1, c: 1, d: 4 };
    const theirs = { a: 1, b: 3, e: 5 };
    const merged = await merge(base, ours, theirs);
    expect(merged.conflicts).toStrictEqual([]);
    expect(JSON.stringify(merged.value)).toBe('{"a":2,"b":3,"d":4,"e":5}');
  });

  it("a field ours removed is removed; one both changed alike is no conflict", async () => {
    expect(await merge({ a: 1, b: 1 }, { b: 2 }, { a: 1, b: 2, c: 3 })).toStrictEqual({
      value: { b: 2, c: 3 },
      conflicts: [],
    });
  });

  it("a field both changed differently is a conflict, taking the preferred side's value", async () => {
    const [base, ours, theirs] = [
      { s: "x", n: 1 },
      { s: "o", n: 1 },
      { s: "t", n: 2 },
    ];
    expect(await merge(base, ours, theirs)).toStrictEqual({ value: { s: "o", n: 2 }, conflicts: ["s"] });
    expect(await merge(base, ours, theirs, "theirs")).toStrictEqual({ value: { s: "t", n: 2 }, conflicts: ["s"] });
    // Removed on one side, changed on the other.
    expect(await merge(base, { n: 1 }, theirs)).toStrictEqual({ value: { n: 2 }, conflicts: ["s"] });
  });

  it("unsure whether ours was stored before theirs: a field ours changed that theirs holds at its base is a conflict", async () => {
    const [base, ours, theirs] = [
      { step: "idle", n: 1, m: 1 },
      { step: "name", n: 1, m: 2 },
      { step: "idle", n: 2, m: 2 },
    ];
    const unsure = (prefer: "ours" | "theirs") => mergeChange(base, ours, theirs, prefer, text, true);
    // step: theirs may have changed it back; m: theirs holds our value; n: only theirs changed it.
    expect(await unsure("ours")).toStrictEqual({ value: { step: "name", n: 2, m: 2 }, conflicts: ["step"] });
    expect(await unsure("theirs")).toStrictEqual({ value: { step: "idle", n: 2, m: 2 }, conflicts: ["step"] });
    expect(await merge(base, ours, theirs)).toStrictEqual({ value: { step: "name", n: 2, m: 2 }, conflicts: [] });
    // A whole value: theirs at the base may be ours changed back; theirs at ours is none.
    expect(await mergeChange("a", "b", "a", "theirs", text, true)).toStrictEqual({
      value: "a",
      conflicts: [WHOLE_VALUE],
    });
    expect(await mergeChange("a", "b", "b", "theirs", text, true)).toStrictEqual({ value: "b", conflicts: [] });
    expect(await mergeChange(ABSENT, { a: 1 }, ABSENT, "ours", text, true)).toStrictEqual({
      value: { a: 1 },
      conflicts: [WHOLE_VALUE],
    });
  });

  it("compares nested values by their encoding, and fields set to undefined as absent", async () => {
    const merged = await merge({ cart: { a: 1 } }, { cart: { a: 1 }, x: undefined }, { cart: { a: 1, b: 2 } });
    expect(merged).toStrictEqual({ value: { cart: { a: 1, b: 2 } }, conflicts: [] });
  });

  it("no row read: as if an empty object had been read", async () => {
    expect(await merge(ABSENT, { n: 1 }, { n: 0, x: 7 })).toStrictEqual({ value: { n: 1, x: 7 }, conflicts: ["n"] });
  });

  it("arrays, primitives and a deleted row are one field", async () => {
    expect(await merge([1], [1, 2], [1])).toStrictEqual({ value: [1, 2], conflicts: [] });
    expect(await merge([1], [1], [0])).toStrictEqual({ value: [0], conflicts: [] });
    expect(await merge([1], [2], [3])).toStrictEqual({ value: [2], conflicts: [WHOLE_VALUE] });
    expect(await merge(1, 2, 2)).toStrictEqual({ value: 2, conflicts: [] });
    expect(await merge({ a: 1 }, { a: 2 }, ABSENT)).toStrictEqual({ value: { a: 2 }, conflicts: [WHOLE_VALUE] });
    expect(await merge({ a: 1 }, { a: 2 }, ABSENT, "theirs")).toStrictEqual({
      value: ABSENT,
      conflicts: [WHOLE_VALUE],
    });
  });

  it("a field named __proto__ stays a field", async () => {
    const ours = JSON.parse('{"__proto__":{"x":1}}') as object;
    const merged = (await merge({}, ours, {})).value as object;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged)).toStrictEqual(["__proto__"]);
  });

  it("property: a field only one side changed always ends with that side's value; untouched fields keep theirs", async () => {
    const fields = fc.dictionary(fc.constantFrom("a", "b", "c", "d"), fc.integer({ min: 0, max: 3 }));
    await fc.assert(
      fc.asyncProperty(fields, fields, fields, async (base, ours, theirs) => {
        const { value, conflicts } = await merge(base, ours, theirs);
        const merged = value as Record<string, number>;
        for (const key of new Set([...Object.keys(base), ...Object.keys(ours), ...Object.keys(theirs)])) {
          const [b, o, t] = [base[key], ours[key], theirs[key]];
          if (o === b) expect(merged[key]).toBe(t);
          else if (t === b || t === o) expect(merged[key]).toBe(o);
          else {
            expect(conflicts).toContain(key);
            expect(merged[key]).toBe(o);
          }
        }
      }),
    );
  });
});
