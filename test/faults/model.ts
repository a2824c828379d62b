import { expect } from "vitest";
import { PostgresStorageError, type PostgresStorage } from "../../src/index.js";

/** A stored value as the model knows it; ABSENT stands for "no row". */
type Value = Record<string, number>;
const ABSENT = "absent";
type State = Value | typeof ABSENT;

// Key order is not compared: the model builds merged values in its own order.
const canonical = (state: State) =>
  state === ABSENT ? ABSENT : JSON.stringify(Object.entries(state).sort(([a], [b]) => a.localeCompare(b)));
const same = (a: State, b: State) => canonical(a) === canonical(b);
const merge = (state: State, patch: Value): Value => (state === ABSENT ? { ...patch } : { ...state, ...patch });

/** What a run of random operations under faults came to. */
export interface RunReport {
  readonly succeeded: number;
  readonly failed: number;
  /** Operations that failed with something other than PostgresStorageError: must be 0. */
  readonly foreignErrors: number;
}

/**
 * Runs random operations one after another and checks every answer against a
 * model of what the table may hold. A failed write or delete in doubt may or
 * may not have taken effect, so the model keeps each key's possible states; one
 * not in doubt (`inDoubt: false`) certainly did not, and adds none. A
 * successful read or write settles them. Any answer outside them (a lost
 * acknowledged write, a read of `undefined` for a stored key, a write said not
 * to have applied that did) fails the test.
 */
export async function runAgainstModel(
  storage: PostgresStorage<Value>,
  options: { operations: number; keys: number; random: () => number },
): Promise<RunReport & { check(final: PostgresStorage<Value>): Promise<void> }> {
  const possible = new Map<string, State[]>();
  const keys = Array.from({ length: options.keys }, (_, i) => `key:${i}`);
  for (const key of keys) possible.set(key, [ABSENT]);
  const report = { succeeded: 0, failed: 0, foreignErrors: 0 };

  const observe = (key: string, seen: State) => {
    const states = possible.get(key) ?? [];
    expect(
      states.some((state) => same(state, seen)),
      `${key}: saw ${JSON.stringify(seen)}, expected one of ${JSON.stringify(states)}`,
    ).toBe(true);
    possible.set(key, [seen]);
  };

  for (let i = 0; i < options.operations; i += 1) {
    const key = keys[Math.floor(options.random() * keys.length)] as string;
    const roll = options.random();
    const states = possible.get(key) ?? [];
    /** After a failed write: the states it may have left, which are the ones before unless it is in doubt. */
    const failedWith = (error: unknown, applied: State[]) => {
      const notApplied = error instanceof PostgresStorageError && !error.inDoubt;
      possible.set(key, notApplied ? states : [...states, ...applied]);
    };
    try {
      if (roll < 0.35) {
        const value = { n: i };
        try {
          await storage.write(key, value);
          possible.set(key, [value]);
        } catch (error) {
          failedWith(error, [value]);
          throw error;
        }
      } else if (roll < 0.65) {
        // As grammY's session does: a read, then its write-back, here unchanged (nothing to apply, no statement);
        // a session that is not there is deleted instead. So no read stays open, and a later write of the key is
        // a plain write, which replaces the value whatever happened in between.
        const seen = await storage.read(key);
        observe(key, seen ?? ABSENT);
        try {
          if (seen === undefined) await storage.delete(key);
          else await storage.write(key, seen);
        } catch (error) {
          failedWith(error, [seen ?? ABSENT]);
          throw error;
        }
      } else if (roll < 0.75) {
        const present = await storage.has(key);
        expect(states.some((state) => (state !== ABSENT) === present)).toBe(true);
        if (states.length === 1) expect(present).toBe(states[0] !== ABSENT);
      } else if (roll < 0.85) {
        try {
          await storage.delete(key);
          possible.set(key, [ABSENT]);
        } catch (error) {
          failedWith(error, [ABSENT]);
          throw error;
        }
      } else {
        const patch = { [`u${i % 5}`]: i };
        const merged = states.map((state) => merge(state, patch));
        try {
          const result = await storage.update(key, patch);
          possible.set(key, merged);
          observe(key, result);
        } catch (error) {
          failedWith(error, merged);
          throw error;
        }
      }
      report.succeeded += 1;
    } catch (error) {
      if (error instanceof PostgresStorageError) report.failed += 1;
      else {
        report.foreignErrors += 1;
        throw error;
      }
    }
  }
  return {
    ...report,
    async check(final) {
      for (const key of keys) observe(key, (await final.read(key)) ?? ABSENT);
    },
  };
}
