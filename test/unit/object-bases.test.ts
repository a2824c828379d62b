import { describe, expect, it } from "vitest";
import { ObjectBases, type Texts } from "../../src/object-bases.ts";

const base = (stored: string | null, plain = stored): Texts => ({ stored, plain });

describe("ObjectBases: the base of each session object a read returned", () => {
  it("finds an object's base until it is replaced or deleted", () => {
    const bases = new ObjectBases<Texts>(10, 1000);
    const session = { v: 1 };
    bases.set(session, base('{"v":1}'));
    expect(bases.get(session)?.stored).toBe('{"v":1}');
    bases.set(session, base('{"v":2}'));
    expect(bases.get(session)?.stored).toBe('{"v":2}');
    bases.delete(session);
    expect(bases.get(session)).toBeUndefined();
    expect(bases.get({ v: 1 })).toBeUndefined();
  });

  it("holds at most maxObjects objects, forgetting the oldest first", () => {
    const bases = new ObjectBases<Texts>(3, 1000);
    const sessions = [{}, {}, {}, {}];
    for (const [i, session] of sessions.entries()) bases.set(session, base(String(i)));
    expect(sessions.map((session) => bases.get(session)?.stored)).toStrictEqual([undefined, "1", "2", "3"]);
    // Replacing a base makes the object the newest.
    bases.set(sessions[1] as object, base("1b"));
    bases.set({}, base("4"));
    expect(sessions.map((session) => bases.get(session)?.stored)).toStrictEqual([undefined, "1b", undefined, "3"]);
  });

  it("holds at most maxChars characters of the bases' texts, counting a text shared by stored and plain once", () => {
    const bases = new ObjectBases<Texts>(100, 320);
    const a = {};
    const b = {};
    const c = {};
    bases.set(a, base("x".repeat(10))); // 10
    bases.set(b, base("y".repeat(5), "p".repeat(5))); // 10
    for (let i = 0; i < 30; i += 1) bases.set({}, base("z".repeat(10))); // 300 more: 320 in all
    expect(bases.get(a)?.stored).toBe("x".repeat(10));
    bases.set(c, base("w")); // 321: the oldest goes
    expect([bases.get(a), bases.get(b), bases.get(c)].map((found) => found?.stored)).toStrictEqual([
      undefined,
      "yyyyy",
      "w",
    ]);
    // Deleting gives its characters back: 310 held, so ten more fit without forgetting b, and one more does not.
    bases.delete(c);
    bases.set({}, base("v".repeat(10)));
    expect(bases.get(b)?.stored).toBe("yyyyy");
    bases.set({}, base("w"));
    expect(bases.get(b)).toBeUndefined();
  });

  it("remembers an object too large to hold weakly, however many others come after it", () => {
    const bases = new ObjectBases<Texts>(2, 160);
    const large = {};
    bases.set(large, base("x".repeat(11))); // more than a sixteenth of 160
    for (let i = 0; i < 10; i += 1) bases.set({}, base("s"));
    expect(bases.get(large)?.stored).toBe("x".repeat(11));
    bases.delete(large);
    expect(bases.get(large)).toBeUndefined();
  });
});
