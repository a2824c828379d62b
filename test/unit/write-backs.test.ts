import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { WriteBacks, type Base } from "../../src/write-backs.ts";

const base = (key: string, stored: string | null): Base => ({ key, stored, plain: stored, quietUntil: Infinity });
/** A read whose plain text is not its stored text: a codec that encrypts or compresses, a schema's output, `null` for none handed out. */
const seen = (key: string, stored: string | null, plain: string | null): Base => ({ ...base(key, stored), plain });

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

  it("a read of exactly the row an update() left, by its stored text or by its plain text, is one more open read of the read that found none", () => {
    const backs = new WriteBacks();
    // The same plain text under another stored text: a codec that encrypts stores one session under many texts.
    backs.read(base("plain", null), undefined);
    backs.updated("plain", "sealed-1", '{"plan":"pro"}', ["plan"]);
    const byPlain = { plan: "pro" };
    backs.read(seen("plain", "sealed-2", '{"plan":"pro"}'), byPlain);
    expect(backs.take("plain", byPlain)).toStrictEqual(seen("plain", "sealed-2", '{"plan":"pro"}'));
    expect(backs.take("plain", { plan: "free" })).toStrictEqual({ ...base("plain", null), updatedFields: ["plan"] });
    // The same stored text, handed out as another plain text (an update() stored under validateOnWrite: false).
    backs.read(base("stored", null), undefined);
    backs.updated("stored", '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
    const byStored = { plan: "pro", n: 0 };
    backs.read(seen("stored", '{"plan":"pro"}', '{"plan":"pro","n":0}'), byStored);
    expect(backs.take("stored", byStored)).toStrictEqual(seen("stored", '{"plan":"pro"}', '{"plan":"pro","n":0}'));
    expect(backs.take("stored", { plan: "free" })).toStrictEqual({ ...base("stored", null), updatedFields: ["plan"] });
    expect(backs.take("stored", { plan: "free" })).toBeUndefined();
  });

  it("a read of another row than the update() left is no such read: it disagrees with the read that found none, and the initial() object builds on that one, with the update's fields", () => {
    const backs = new WriteBacks();
    backs.read(base("k", null), undefined);
    backs.updated("k", "sealed-1", '{"plan":"pro"}', ["plan"]);
    const other = { plan: "pro", by: "them" };
    backs.read(seen("k", "sealed-2", '{"plan":"pro","by":"them"}'), other);
    expect(backs.latest("k")).toBe("sealed-2");
    expect(backs.take("k", other)).toStrictEqual(seen("k", "sealed-2", '{"plan":"pro","by":"them"}'));
    expect(backs.take("k", { plan: "free" })).toStrictEqual({ ...base("k", null), updatedFields: ["plan"] });
  });

  it("a read of the row an update() left, once the read that found none was written back, starts afresh", () => {
    const backs = new WriteBacks();
    backs.read(base("k", null), undefined);
    backs.updated("k", '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
    expect(backs.take("k", { plan: "free" })).toStrictEqual({ ...base("k", null), updatedFields: ["plan"] });
    backs.read(base("k", '{"plan":"pro"}'), { plan: "pro" });
    expect(backs.take("k", { plan: "pro", n: 1 })).toStrictEqual(base("k", '{"plan":"pro"}'));
  });

  it("a read of the text the key's last read saw restarts the fallback window and clears a write of this storage", () => {
    let now = 0;
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
    backs.read(base("k", "1"), 1);
    now = 900;
    backs.read(base("k", "1"), 1);
    now = 1500; // 1500 ms after the first read, 600 ms after the second
    expect(backs.take("k", 1)).toStrictEqual(base("k", "1"));
    expect(backs.take("k", 1)).toStrictEqual(base("k", "1"));
    expect(backs.take("k", 1)).toBeUndefined();
    // A read after all were written back, of the text last seen: open again.
    backs.read(base("k", "1"), 1);
    expect(backs.take("k", 2)).toStrictEqual(base("k", "1"));
    // A read of the text this storage wrote: that write is before the read, so the fallback holds.
    backs.read(base("j", "1"), 1);
    expect(backs.take("j", 1)).toStrictEqual(base("j", "1"));
    backs.saw("j", "2");
    backs.read(base("j", "2"), 2);
    expect(backs.take("j", 3)).toStrictEqual(base("j", "2"));
  });

  it("the fallback window: a read exactly fallbackMs after an open one starts afresh, one a millisecond earlier disagrees", () => {
    let now = 50_000; // the clock (performance.now) does not start at the first read
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
    backs.read(base("k", "1"), 1);
    now = 51_000;
    backs.read(base("k", "2"), 2);
    expect(backs.take("k", 3)).toStrictEqual(base("k", "2"));
    backs.read(base("j", "1"), 1);
    now = 51_999;
    backs.read(base("j", "2"), 2);
    expect(backs.take("j", 3)).toBeUndefined();
    // And a write 999 ms after its read is still its write-back.
    backs.read(base("i", "1"), 1);
    now = 52_998;
    expect(backs.take("i", 3)).toStrictEqual(base("i", "1"));
  });

  it("an update() while a read that found no row is open beside a read of a row stays with that read's initial() object", () => {
    const backs = new WriteBacks();
    backs.read(base("k", null), undefined);
    const other = { b: true };
    backs.read(base("k", '{"b":true}'), other);
    backs.updated("k", '{"b":true,"plan":"pro"}', '{"b":true,"plan":"pro"}', ["plan"]);
    expect(backs.take("k", other)).toStrictEqual(base("k", '{"b":true}'));
    expect(backs.take("k", { plan: "free" })).toStrictEqual({ ...base("k", null), updatedFields: ["plan"] });
  });

  it("open reads disagree when they handed out different plain texts, not when only their stored texts differ", () => {
    const backs = new WriteBacks();
    backs.read(seen("k", "sealed-1", '{"v":1}'), { v: 1 });
    backs.read(seen("k", "sealed-2", '{"v":1}'), { v: 1 });
    expect(backs.take("k", { v: 2 })).toStrictEqual(seen("k", "sealed-2", '{"v":1}'));
    expect(backs.take("k", { v: 2 })).toStrictEqual(seen("k", "sealed-2", '{"v":1}'));
    backs.read(seen("j", "same", '{"v":1}'), { v: 1 });
    backs.read(seen("j", "same", '{"v":2}'), { v: 2 });
    expect(backs.take("j", { v: 3 })).toBeUndefined();
    // A read that handed out none and one that handed out a session disagree too: a value no read returned may be the
    // initial() object of the one that found none, so each, while a read is open, is merged onto the row with no base.
    backs.read(base("i", null), undefined);
    backs.read(base("i", '{"v":1}'), { v: 1 });
    expect(backs.take("i", { v: 3 })).toStrictEqual(base("i", null));
    expect(backs.take("i", { v: 4 })).toStrictEqual(base("i", null));
    expect(backs.take("i", { v: 5 })).toBeUndefined();
  });

  it("the bound on kept texts: a read at the bound is kept, one character more is not; a plain text equal to the stored one counts once", () => {
    const backs = new WriteBacks({ maxGuessChars: 4 });
    const keptOrNot = (read: Base): Base | undefined => {
      backs.read(read, undefined);
      return backs.take(read.key, { other: true });
    };
    expect(keptOrNot(base("a", "1234"))).toStrictEqual(base("a", "1234"));
    expect(keptOrNot(base("b", "12345"))).toBeUndefined();
    expect(keptOrNot(seen("c", "12", "ab"))).toStrictEqual(seen("c", "12", "ab"));
    expect(keptOrNot(seen("d", "12", "abc"))).toBeUndefined();
    expect(keptOrNot(seen("e", "1234", "a"))).toBeUndefined();
    expect(keptOrNot(seen("f", "1", "abcd"))).toBeUndefined();
    // A row whose session was discarded (no plain text): its stored text alone counts.
    expect(keptOrNot(seen("g", "1234", null))).toStrictEqual(seen("g", "1234", null));
    expect(keptOrNot(seen("h", "12345", null))).toBeUndefined();
    expect(keptOrNot(base("i", null))).toStrictEqual(base("i", null));
  });

  it("the default bound is a million characters, a session whose plain text is its stored text counted once", () => {
    const backs = new WriteBacks();
    const atBound = "x".repeat(1_000_000);
    backs.read(base("a", atBound), undefined);
    expect(backs.latest("a")).toBe(atBound);
    expect(backs.take("a", { other: true })?.stored).toBe(atBound);
    backs.read(base("b", `${atBound}x`), undefined);
    expect(backs.latest("b")).toBeUndefined();
    expect(backs.take("b", { other: true })).toBeUndefined();
  });

  it("a read over the bound keeps no base: a later open read of the key disagrees with it, and an update() after it ends the fallback", () => {
    const backs = new WriteBacks({ maxGuessChars: 3 });
    backs.read(base("k", "1234"), undefined);
    backs.read(base("k", "1"), 1);
    expect(backs.take("k", 2)).toBeUndefined();
    backs.read(seen("j", "1234", null), undefined);
    backs.updated("j", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.latest("j")).toBeUndefined(); // over the bound too
    expect(backs.take("j", { a: 2 })).toBeUndefined();
  });

  it("primitive sessions and null: a read of one, its write-back, and a write of one", () => {
    const backs = new WriteBacks();
    backs.read(base("n", "null"), null);
    expect(backs.take("n", null)).toStrictEqual(base("n", "null"));
    backs.read(base("p", "1"), 1);
    expect(backs.take("p", 1)).toStrictEqual(base("p", "1"));
    expect(backs.take("p", 1)).toBeUndefined();
    backs.wrote(2, base("p", "2"));
    expect(backs.latest("p")).toBe("2");
    backs.wrote(null, base("n", "null"));
    expect(backs.latest("n")).toBe("null");
    backs.wrote("s", base("s", '"s"'));
    expect(backs.latest("s")).toBe('"s"');
    expect(backs.take("s", "s")).toBeUndefined();
  });

  it("update() after a read that handed out no session keeps the fallback; after one that did, or with no read open, ends it", () => {
    const backs = new WriteBacks();
    // A row whose session onInvalid discarded: no session handed out, so grammY writes initial() back.
    backs.read(seen("discarded", "garbage", null), undefined);
    backs.updated("discarded", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.take("discarded", { a: 0 })).toStrictEqual({
      ...seen("discarded", "garbage", null),
      updatedFields: ["a"],
    });
    backs.read(base("handed", '{"a":0}'), { a: 0 });
    backs.updated("handed", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.latest("handed")).toBe('{"a":1}');
    expect(backs.take("handed", { a: 2 })).toBeUndefined();
    // No read of the key at all, and no read of it open any more.
    backs.updated("never", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.latest("never")).toBe('{"a":1}');
    expect(backs.take("never", { a: 2 })).toBeUndefined();
    backs.read(base("closed", null), undefined);
    expect(backs.take("closed", { a: 0 })).toStrictEqual(base("closed", null));
    backs.updated("closed", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.take("closed", { a: 2 })).toBeUndefined();
    backs.read(base("closed", '{"a":1}'), { a: 1 });
    expect(backs.take("closed", { a: 2 })).toStrictEqual(base("closed", '{"a":1}'));
  });

  it("forgets the least recently used key beyond maxKeys; an operation of a key makes it the most recent", () => {
    const backs = new WriteBacks({ maxKeys: 2 });
    backs.read(base("a", "1"), 1);
    backs.read(base("b", "2"), 2);
    backs.saw("a", "3"); // a is now more recent than b
    backs.read(base("c", "4"), 4);
    expect(backs.latest("a")).toBe("3");
    expect(backs.latest("b")).toBeUndefined();
    expect(backs.take("b", 5)).toBeUndefined();
    backs.updated("a", "5", "5", ["x"]);
    backs.read(base("d", "6"), 6);
    expect(backs.latest("c")).toBeUndefined();
    expect(backs.latest("a")).toBe("5");
    // latest() and take() do not count as use.
    expect(backs.latest("a")).toBe("5");
    expect(backs.take("a", 7)).toBeUndefined();
    backs.wrote({}, base("e", "8"));
    expect(backs.latest("a")).toBeUndefined();
    expect(backs.latest("d")).toBe("6");
    expect(backs.latest("e")).toBe("8");
  });

  it("latest() is what the row held after this storage's last operation of the key", () => {
    const backs = new WriteBacks();
    expect(backs.latest("k")).toBeUndefined();
    backs.read(base("k", null), undefined);
    expect(backs.latest("k")).toBeNull();
    backs.updated("k", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.latest("k")).toBe('{"a":1}');
    backs.saw("k", null); // deleted
    expect(backs.latest("k")).toBeNull();
    backs.saw("k", '{"a":2}');
    expect(backs.latest("k")).toBe('{"a":2}');
    backs.read(base("k", '{"a":3}'), { a: 3 });
    expect(backs.latest("k")).toBe('{"a":3}');
  });

  it("once no read of a key is open, the key lets the base of its last read go", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const backs = new WriteBacks();
    // Builds the base in a frame of its own, so that only the WeakRef (and the bookkeeping) can reach it.
    const readTwice = (): WeakRef<Base> => {
      const read = base("k", "x".repeat(1000));
      backs.read(read, undefined);
      backs.read(read, undefined);
      return new WeakRef(read);
    };
    const isKept = async (ref: WeakRef<Base>): Promise<boolean> => {
      await new Promise((resolve) => setTimeout(resolve, 0)); // a WeakRef holds its target until the job ends
      gc();
      return ref.deref() !== undefined;
    };
    const ref = readTwice();
    expect(backs.take("k", { other: 1 })?.stored).toHaveLength(1000);
    expect(await isKept(ref)).toBe(true); // one read still open: its write-back may still come
    expect(backs.take("k", { other: 2 })?.stored).toHaveLength(1000);
    expect(await isKept(ref)).toBe(false);
  });

  it("the base of a read that handed out none serves only within fallbackMs of that read: at fallbackMs it does not", () => {
    let now = 10_000;
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
    backs.read(base("k", null), undefined);
    now = 10_500;
    backs.read(base("k", '{"v":1}'), { v: 1 }); // disagrees: only the read that found none can serve
    backs.read(base("k", '{"v":1}'), { v: 1 });
    now = 10_999;
    expect(backs.take("k", { v: 2 })).toStrictEqual(base("k", null));
    now = 11_000; // the row reads' window is still open, the empty read's is not
    expect(backs.take("k", { v: 3 })).toBeUndefined();
    // With fields an update() set, an expired fallback is still none: no base with the fields alone.
    now = 20_000;
    backs.read(base("j", null), undefined);
    backs.updated("j", '{"a":1}', '{"a":1}', ["a"]);
    now = 21_000;
    expect(backs.take("j", { a: 0 })).toBeUndefined();
  });

  it("the base of a read that handed out none serves when reads disagree or this storage wrote the key, until no read is open", () => {
    const backs = new WriteBacks();
    backs.read(base("k", '{"v":1}'), { v: 1 });
    backs.read(base("k", null), undefined);
    backs.saw("k", '{"v":2}'); // touched, and the reads disagree
    expect(backs.take("k", { v: 3 })).toStrictEqual(base("k", null));
    expect(backs.take("k", { v: 4 })).toStrictEqual(base("k", null));
    expect(backs.take("k", { v: 5 })).toBeUndefined(); // open 0: nothing serves
    // Touched alone (reads that agree) also falls back to it.
    backs.read(base("j", null), undefined);
    backs.read(base("j", null), undefined);
    backs.saw("j", '{"v":1}');
    expect(backs.take("j", { v: 1 })).toStrictEqual(base("j", null));
  });

  it("a read that starts afresh forgets the empty read and the update()'s fields; a read over the bound sets none", () => {
    let now = 0;
    const backs = new WriteBacks({ now: () => now, fallbackMs: 1000, maxGuessChars: 3 });
    backs.read(base("k", null), undefined);
    backs.updated("k", '{"a":1}', '{"a":1}', ["a"]);
    now = 1000;
    backs.read(base("k", "1"), 1); // the window lapsed: afresh
    backs.saw("k", "2");
    expect(backs.take("k", 3)).toBeUndefined();
    // A read that found a row too large to keep hands out none but keeps no base to fall back to.
    backs.read(seen("j", "1234", null), undefined);
    backs.read(base("j", "1"), 1);
    expect(backs.take("j", 2)).toBeUndefined();
    expect(backs.take("j", 2)).toBeUndefined();
  });

  it("update() fields are recorded only while a read that handed out none is open, and survive a counting read of another row", () => {
    const backs = new WriteBacks();
    // Updated before the read that found none: not that read's initial() object's.
    backs.read(base("k", '{"v":1}'), { v: 1 });
    backs.updated("k", '{"v":1,"a":1}', '{"v":1,"a":1}', ["a"]);
    backs.read(base("k", null), undefined);
    expect(backs.take("k", { b: 0 })).toStrictEqual(base("k", null));
    // Updated while it is open beside a read of a row: recorded, and the fallback is that read's with the fields.
    backs.read(base("j", '{"v":1}'), { v: 1 });
    backs.read(base("j", null), undefined);
    backs.updated("j", '{"v":1,"a":1}', '{"v":1,"a":1}', ["a"]);
    backs.read(base("j", '{"v":9}'), { v: 9 }); // another row, within the window: counts, keeps the fields
    expect(backs.take("j", { a: 0 })).toStrictEqual({ ...base("j", null), updatedFields: ["a"] });
    // Updated with only the read that found none open: not touched, and a replaced object builds on it, with the fields.
    backs.read(base("i", null), undefined);
    backs.read(base("i", null), undefined);
    backs.updated("i", '{"a":1}', '{"a":1}', ["a"]);
    expect(backs.take("i", { a: 0 })).toStrictEqual({ ...base("i", null), updatedFields: ["a"] });
    expect(backs.take("i", { a: 0 })).toStrictEqual({ ...base("i", null), updatedFields: ["a"] });
  });

  it("a read of the row an update() left counts without restarting the window, matched by its stored or by its plain text", () => {
    for (const [key, read] of [
      ["stored", seen("stored", '{"plan":"pro"}', '{"plan":"pro","n":0}')],
      ["plain", seen("plain", "sealed-2", '{"plan":"pro"}')],
    ] as const) {
      let now = 0;
      const backs = new WriteBacks({ now: () => now, fallbackMs: 1000 });
      backs.read(base(key, null), undefined);
      backs.updated(key, '{"plan":"pro"}', '{"plan":"pro"}', ["plan"]);
      now = 900;
      backs.read(read, {});
      // 1500 ms after the read that found none: that window lapsed, so this read starts afresh.
      now = 1500;
      backs.read(base(key, '{"other":1}'), { other: 1 });
      expect(backs.take(key, { fresh: true })).toStrictEqual(base(key, '{"other":1}'));
    }
  });
});

// Mutants of src/write-backs.ts left standing are equivalent:
// - take(): `empty !== undefined` forced true assigns `empty` (undefined) to an undefined fallback.
// - updated(): `state.open > 0` forced true (or `>= 0`) in the fields check: with no read open, take() cleared `empty`.
// - updated(): the touched check (any mutant): a key whose last base handed out none while a read is open has that
//   base as `empty`, read at the same time, so take() falls back to the same base whether touched or not.
// - (not a mutant) take() never sees an expired window with a fresh `empty`, because `emptyAt <= readAt` always (both set by one read).
