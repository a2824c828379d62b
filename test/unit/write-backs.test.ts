import { describe, expect, it } from "vitest";
import { WriteBacks, type Base } from "../../src/write-backs.ts";

const base = (key: string, stored: string | null): Base => ({ key, stored, plain: stored, quietUntil: Infinity });

describe("WriteBacks: which write is the write-back of which read", () => {
  it("an object a read returned is written back on the base of that read, however many reads of the key came since", () => {
    const backs = new WriteBacks();
    const first = { v: 1 };
    const second = { v: 2 };
    backs.read(base("k", '{"v":1}'), first);
    backs.read(base("k", '{"v":2}'), second);
    expect(backs.take("k", first)?.stored).toBe('{"v":1}');
    expect(backs.take("k", second)?.stored).toBe('{"v":2}');
  });

  it("another object falls back to the key's last read only while every open read of the key saw the same text", () => {
    const backs = new WriteBacks();
    backs.read(base("k", null), undefined);
    backs.read(base("k", null), undefined);
    expect(backs.take("k", { fresh: 1 })?.stored).toBeNull();
    expect(backs.take("k", { fresh: 2 })?.stored).toBeNull();
    // Both reads written back: a third write is a plain one.
    expect(backs.take("k", { fresh: 3 })).toBeUndefined();
    backs.read(base("k", "1"), 1);
    backs.read(base("k", "2"), 2);
    expect(backs.take("k", 3)).toBeUndefined();
  });

  it("after this storage wrote, updated or deleted the key, another object is a plain write; a write-back does not count", () => {
    const backs = new WriteBacks();
    const tracked = { v: 1 };
    backs.read(base("k", '{"v":1}'), tracked);
    backs.read(base("k", '{"v":1}'), { v: 1 });
    backs.wrote(tracked, base("k", '{"v":2}'));
    expect(backs.take("k", { replaced: true })?.stored).toBe('{"v":1}');
    backs.read(base("k", '{"v":2}'), { v: 2 });
    backs.saw("k", '{"v":3}'); // an update() or a plain write
    expect(backs.take("k", { replaced: true })).toBeUndefined();
  });

  it("a write of this storage since the read (saw) ends the fallback; a read after a lapsed one starts afresh", () => {
    let now = 0;
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
    backs.read(base("k", "1"), 1);
    backs.saw("k", "3");
    expect(backs.take("k", 3)).toBeUndefined();
    backs.read(base("j", "1"), 1);
    now = 2000; // the first read is no longer open as far as the fallback goes
    backs.read(base("j", "2"), 2);
    expect(backs.take("j", 5)?.stored).toBe("2");
  });

  it("an object written to another key than it was read from is no write-back", () => {
    const backs = new WriteBacks();
    const session = { v: 1 };
    backs.read(base("a", '{"v":1}'), session);
    expect(backs.take("b", session)).toBeUndefined();
  });

  it("an update() after a read that found no row leaves the fallback, naming the fields it set; after any other read, ends it", () => {
    const backs = new WriteBacks();
    backs.read(base("new", null), undefined);
    backs.updated("new", '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
    backs.updated("new", '{"plan":"pro","n":1}', '{"plan":"pro","n":1}', ["n"]);
    expect(backs.take("new", { plan: "free" })).toStrictEqual({ ...base("new", null), updatedFields: ["plan", "n"] });
    expect(backs.latest("new")).toBe('{"plan":"pro","n":1}');
    backs.read(base("old", '{"plan":"free"}'), { plan: "free" });
    backs.updated("old", '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
    expect(backs.take("old", { plan: "free" })).toBeUndefined();
    // A read starts afresh: fields an update() set before it are no longer the update's own.
    backs.read(base("new", null), undefined);
    expect(backs.take("new", { plan: "free" })).toStrictEqual(base("new", null));
    // Unless it reads the very row the update left while the read that found none is open: that read's write-back
    // still builds on it, and the object this read returned on its own base.
    backs.read(base("again", null), undefined);
    backs.updated("again", '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
    const reread = { plan: "pro" };
    backs.read(base("again", '{"plan":"pro"}'), reread);
    expect(backs.take("again", reread)).toStrictEqual(base("again", '{"plan":"pro"}'));
    expect(backs.take("again", { plan: "free" })).toStrictEqual({ ...base("again", null), updatedFields: ["plan"] });
  });

  it("a write-back applied moves the object's base to what it wrote", () => {
    const backs = new WriteBacks();
    const session = { v: 1 };
    backs.read(base("k", '{"v":1}'), session);
    backs.wrote(session, base("k", '{"v":2}'));
    expect(backs.take("k", session)?.stored).toBe('{"v":2}');
    expect(backs.latest("k")).toBe('{"v":2}');
  });

  it("the fallback lapses: a write long after the read is a plain write", () => {
    let now = 0;
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
    backs.read(base("k", "1"), 1);
    now = 1000;
    expect(backs.take("k", 1)).toBeUndefined();
  });

  it("remembers a bounded number of keys, and no guess of a text over the bound", () => {
    const backs = new WriteBacks({ maxKeys: 2, maxGuessChars: 3 });
    backs.saw("a", "1");
    backs.saw("b", "2");
    backs.saw("c", "3");
    expect(backs.latest("a")).toBeUndefined();
    expect(backs.latest("b")).toBe("2");
    expect(backs.latest("c")).toBe("3");
    backs.saw("c", "123"); // as long as the bound: kept
    expect(backs.latest("c")).toBe("123");
    backs.saw("c", "1234");
    expect(backs.latest("c")).toBeUndefined();
    backs.read(base("c", "1234"), 1234);
    expect(backs.take("c", 1234)).toBeUndefined();
  });
});
