import { afterEach, describe, expect, it, vi } from "vitest";
import { WriteSkips, type ReadOutcome } from "../../src/write-skips.js";

/** A promise settled by hand, so a test decides in which order answers arrive. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const WINDOW = 5_000;

/** A WriteSkips on a clock the test moves, with operations whose answers the test releases. */
function setup(limits: { maxKeys?: number; maxChars?: number } = {}) {
  const clock = { now: 0 };
  const skips = new WriteSkips({
    maxKeys: limits.maxKeys ?? 100,
    maxChars: limits.maxChars ?? 1_000_000,
    windowMs: WINDOW,
    now: () => clock.now,
  });
  /** Starts a read of `key`; settle it with the returned functions. */
  const read = (key: string) => {
    const answer = deferred<ReadOutcome>();
    const done = skips.observeRead(key, () => answer.promise).catch(() => undefined);
    return {
      found: (text: string | undefined, skippableMs = Infinity) => answer.resolve({ text, skippableMs }),
      fail: () => answer.reject(new Error("lost")),
      done,
    };
  };
  /** Starts a write (or delete: `undefined`) of `key`. */
  const write = (key: string) => {
    const answer = deferred<{ text: string | undefined }>();
    const done = skips.observeWrite(key, () => answer.promise).catch(() => undefined);
    return {
      stored: (text: string | undefined) => answer.resolve({ text }),
      fail: () => answer.reject(new Error("lost")),
      done,
    };
  };
  /** A read of `key` that finds `text`, alone. */
  const lone = async (key: string, text: string | undefined, skippableMs = Infinity) => {
    const r = read(key);
    r.found(text, skippableMs);
    await r.done;
  };
  return { clock, skips, read, write, lone };
}

describe("WriteSkips: when a write may go without a statement", () => {
  it("a lone read arms one skip of the text it found, which the next write takes", async () => {
    const { skips, lone } = setup();
    await lone("k", "X");
    expect(skips.takeSkip("k")).toBe("X");
    // Used up: the write after it is sent, whatever it writes.
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("a read that found no row arms nothing", async () => {
    const { skips, lone } = setup();
    await lone("k", undefined);
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("writes never arm a skip: A writes X, another process writes Y, A writes X again and it is sent", async () => {
    const { skips, write } = setup();
    const w = write("k");
    w.stored("X");
    await w.done;
    // What another process does is invisible here; the only safe answer is to send.
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("the skip lapses after the window", async () => {
    const { skips, lone, clock } = setup();
    await lone("k", "X");
    clock.now += WINDOW - 1;
    expect(skips.takeSkip("k")).toBe("X");
    await lone("k", "X");
    clock.now += WINDOW;
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("the window counts from when the read was sent, not from its answer", async () => {
    const { skips, read, clock } = setup();
    const r = read("k");
    clock.now += WINDOW;
    r.found("X");
    await r.done;
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("a row whose expiry needs renewing sooner is armed only that long", async () => {
    const { skips, lone, clock } = setup();
    await lone("k", "X", 100);
    clock.now += 99;
    expect(skips.takeSkip("k")).toBe("X");
    await lone("k", "X", 100);
    clock.now += 100;
    expect(skips.takeSkip("k")).toBeUndefined();
    await lone("k", "X", 0);
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  for (const kind of ["write", "delete", "failed write"] as const) {
    it(`a ${kind} of the key after the read disarms it`, async () => {
      const { skips, lone, write } = setup();
      await lone("k", "X");
      const w = write("k");
      if (kind === "failed write") w.fail();
      else w.stored(kind === "write" ? "Y" : undefined);
      await w.done;
      expect(skips.takeSkip("k")).toBeUndefined();
    });
  }

  it("a write in flight disarms at once, before its answer", async () => {
    const { skips, lone, write } = setup();
    await lone("k", "X");
    const w = write("k");
    expect(skips.takeSkip("k")).toBeUndefined();
    w.stored("Y");
    await w.done;
  });

  it("a later read replaces the arm with what it found", async () => {
    const { skips, lone } = setup();
    await lone("k", "X");
    await lone("k", "Y");
    expect(skips.takeSkip("k")).toBe("Y");
  });

  it("a read overlapped by a write arms nothing, whichever answer arrives first", async () => {
    for (const readFirst of [true, false]) {
      const { skips, read, write } = setup();
      const r = read("k");
      const w = write("k");
      if (readFirst) r.found("X");
      w.stored("Y");
      if (!readFirst) r.found("X");
      await Promise.all([r.done, w.done]);
      expect(skips.takeSkip("k")).toBeUndefined();
    }
  });

  it("a read that starts and ends while a write is in flight arms nothing, even after another read has ended", async () => {
    const { skips, read, write } = setup();
    const first = read("k");
    const w = write("k");
    first.found("X");
    await first.done;
    // The write is still in flight: the second read proves nothing about what the row holds.
    const second = read("k");
    second.found("X");
    await second.done;
    expect(skips.takeSkip("k")).toBeUndefined();
    w.stored("Y");
    await w.done;
    expect(skips.guess("k")).toBeUndefined();
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("a read that starts while a write is in flight arms nothing, even if the write then fails", async () => {
    const { skips, read, write } = setup();
    const w = write("k");
    const r = read("k");
    r.found("X");
    await r.done;
    w.fail();
    await w.done;
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("two overlapping reads arm nothing, even when the older answer arrives last", async () => {
    const { skips, read } = setup();
    const older = read("k");
    const newer = read("k");
    newer.found("Y");
    older.found("X");
    await Promise.all([older.done, newer.done]);
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("a delete and a write answered in the opposite order to their commits leave nothing armed", async () => {
    // The database committed the write of X, then the delete; the answers arrive write-last.
    const { skips, write } = setup();
    const d = write("k");
    const w = write("k");
    d.stored(undefined);
    w.stored("X");
    await Promise.all([d.done, w.done]);
    expect(skips.takeSkip("k")).toBeUndefined();
    expect(skips.guess("k")).toBeUndefined();
  });

  it("a failed read arms nothing and leaves the key clean for the next one", async () => {
    const { skips, read, lone } = setup();
    const r = read("k");
    r.fail();
    await r.done;
    expect(skips.takeSkip("k")).toBeUndefined();
    await lone("k", "X");
    expect(skips.takeSkip("k")).toBe("X");
  });

  it("keys are independent", async () => {
    const { skips, lone, write } = setup();
    await lone("a", "X");
    const w = write("b");
    w.stored("X");
    await w.done;
    expect(skips.takeSkip("a")).toBe("X");
  });

  it("forgets the least recently used keys beyond its bounds, which only costs a statement", async () => {
    const { skips, lone } = setup({ maxKeys: 2 });
    await lone("a", "1");
    await lone("b", "2");
    await lone("c", "3");
    expect(skips.takeSkip("a")).toBeUndefined();
    expect(skips.takeSkip("b")).toBe("2");
    expect(skips.takeSkip("c")).toBe("3");
  });

  it("holds texts up to exactly its character budget", async () => {
    const { skips, lone } = setup({ maxChars: 10 });
    await lone("a", "x".repeat(4));
    await lone("b", "y".repeat(6));
    expect(skips.takeSkip("a")).toBe("x".repeat(4));
    expect(skips.takeSkip("b")).toBe("y".repeat(6));
    await lone("c", "z".repeat(10));
    expect(skips.takeSkip("c")).toBe("z".repeat(10));
  });

  it("does not make room for a text larger than its budget, which it would not hold anyway", async () => {
    const { skips, lone } = setup({ maxChars: 10 });
    await lone("a", "x".repeat(5));
    await lone("b", "z".repeat(11));
    expect(skips.takeSkip("b")).toBeUndefined();
    expect(skips.guess("b")).toBeUndefined();
    expect(skips.takeSkip("a")).toBe("x".repeat(5));
  });

  it("forgets the oldest texts beyond its character budget, and never holds a text larger than it", async () => {
    const { skips, lone } = setup({ maxChars: 10 });
    await lone("a", "x".repeat(6));
    await lone("b", "y".repeat(6));
    expect(skips.takeSkip("a")).toBeUndefined();
    expect(skips.takeSkip("b")).toBe("y".repeat(6));
    await lone("c", "z".repeat(11));
    expect(skips.takeSkip("c")).toBeUndefined();
  });
});

describe("WriteSkips: defaults and failures", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("arms for 5 s when no window is given", async () => {
    const clock = { now: 1_000 };
    const skips = new WriteSkips({ now: () => clock.now });
    const ok = { text: "X", skippableMs: Infinity };
    await skips.observeRead("k", async () => ok);
    clock.now = 5_999;
    expect(skips.takeSkip("k")).toBe("X");
    await skips.observeRead("k", async () => ok);
    clock.now = 5_999 + 5_000;
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("keeps time by performance.now when given no clock", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const skips = new WriteSkips();
    const ok = { text: "X", skippableMs: Infinity };
    await skips.observeRead("k", async () => ok);
    vi.advanceTimersByTime(4_999);
    expect(skips.takeSkip("k")).toBe("X");
    await skips.observeRead("k", async () => ok);
    vi.advanceTimersByTime(5_000);
    expect(skips.takeSkip("k")).toBeUndefined();
  });

  it("passes a failed operation's own error on, and counts it as ended", async () => {
    const skips = new WriteSkips({ now: () => 0 });
    const lost = new Error("lost");
    await expect(skips.observeRead("k", () => Promise.reject(lost))).rejects.toBe(lost);
    await expect(skips.observeWrite("k", () => Promise.reject(lost))).rejects.toBe(lost);
    await skips.observeRead("k", async () => ({ text: "X", skippableMs: Infinity }));
    expect(skips.takeSkip("k")).toBe("X");
  });

  it("never lets a written text arm a skip, whatever the clock reads", async () => {
    const skips = new WriteSkips({ now: () => -10 });
    await skips.observeWrite("k", async () => ({ text: "X" }));
    expect(skips.guess("k")).toBe("X");
    expect(skips.takeSkip("k")).toBeUndefined();
  });
});

describe("WriteSkips: guesses for update()'s compare-and-set", () => {
  it("guesses what a lone read or a lone write left", async () => {
    const { skips, lone, write } = setup();
    await lone("k", "X");
    expect(skips.guess("k")).toBe("X");
    const w = write("k");
    w.stored("Y");
    await w.done;
    expect(skips.guess("k")).toBe("Y");
  });

  it("has no guess while an operation of the key is in flight, or after a delete, a failure or an overlap", async () => {
    const { skips, lone, write } = setup();
    await lone("k", "X");
    const w = write("k");
    expect(skips.guess("k")).toBeUndefined();
    w.fail();
    await w.done;
    expect(skips.guess("k")).toBeUndefined();
    await lone("k", "X");
    const d = write("k");
    d.stored(undefined);
    await d.done;
    expect(skips.guess("k")).toBeUndefined();
  });

  it("has no guess after two writes of the key overlapped, whichever answer arrives last", async () => {
    const { skips, write } = setup();
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      const writes = [write("k"), write("k")];
      for (const i of order) {
        writes[i]?.stored(`text ${i}`);
        await writes[i]?.done;
      }
      expect(skips.guess("k")).toBeUndefined();
    }
  });
});
