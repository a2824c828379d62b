// Load from several isolates (storages on separate pools) checked against a model: the failover test and the soak share it.
import type pg from "pg";
import { PostgresStorage, PostgresStorageError } from "../src/index.ts";

/** A stored value as the load writes it: `last` names the operation that wrote it last. */
export type Value = Record<string, string | boolean | number>;
const ABSENT = "absent";

/** Key order is not part of a value: update() merges through jsonb, which sorts keys. */
const canonical = (value: Value | undefined): string =>
  value === undefined ? ABSENT : JSON.stringify(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
const parse = (state: string): Value | undefined =>
  state === ABSENT ? undefined : Object.fromEntries(JSON.parse(state) as [string, string | boolean | number][]);
const merged = (state: string, patch: Value): string => canonical({ ...(parse(state) ?? {}), ...patch });

/** How an operation that wrote a marker ended: resolved, rejected not in doubt, rejected in doubt. */
type Outcome = "ok" | "not-applied" | "in-doubt";

/** One isolate: a storage on a pool of its own. */
export interface Isolate {
  readonly name: string;
  readonly pool: pg.Pool;
  readonly storage: PostgresStorage<Value>;
  /**
   * A second storage on the same pool, for the lone reads and has(): a read in `storage` is the base of a
   * write-back of that storage, and the lone reads here are written back by no one.
   */
  readonly reader: PostgresStorage<Value>;
}

/** What the load saw; violations are what must never happen. */
export interface LoadReport {
  operations: number;
  succeeded: number;
  failed: number;
  failedInDoubt: number;
  /** Reads answered by a server that may be stale (a demoted primary): allowed, counted. */
  staleReads: number;
  /** TTL checks: reads that found a row expired, prunes run and rows they removed. */
  expiredReads: number;
  prunes: number;
  pruned: number;
  violations: string[];
}

/** The table's audit log: every row a statement inserted or updated, by the `last` marker of its value. */
export const auditSql = (table: string): string => `
CREATE TABLE IF NOT EXISTS "${table}_log" (marker text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION "${table}_audit"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "${table}_log" (marker) VALUES (NEW.value::jsonb->>'last');
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER "${table}_audit" AFTER INSERT OR UPDATE ON "${table}"
  FOR EACH ROW EXECUTE FUNCTION "${table}_audit"();
`;

interface KeyState {
  /** The states the row may be in now (canonical), as far as the answers so far tell. */
  possible: Set<string>;
  /** Every state it may ever have held, for reads that a stale server answered. */
  history: Set<string>;
  /** Not to be touched before this time: an operation in doubt may still be committing. */
  coolUntil: number;
}

interface TtlState {
  /** Possible rows: a value and when it was written (between `from` and `to`); ABSENT has no times. */
  possible: { state: string; from: number; to: number }[];
  coolUntil: number;
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  readonly isolates: readonly Isolate[];
  /** Logical clients, each with keys of its own, running one operation at a time through a random isolate. */
  readonly lanes: number;
  readonly keysPerLane: number;
  readonly random: () => number;
  /** Whether a read now may be answered by a stale server (a demoted primary still reached). */
  readonly staleRisk?: () => boolean;
  /** Pause between two operations of a lane, in ms. */
  readonly pauseMs?: number;
  /** TTL lanes: storages with `millisecondsToLive` on the same pools, and prune() now and then. */
  readonly ttl?: { readonly storages: readonly PostgresStorage<Value>[]; readonly ms: number; readonly lanes: number };
  /** Called after every operation with whether it succeeded, which isolate ran it and whether it wrote. */
  readonly onResult?: (result: { isolate: number; ok: boolean; writes: boolean; inDoubt: boolean; at: number }) => void;
}

/** A load running until {@link Load.stop}; then {@link Load.check} compares the database with the model. */
export interface Load {
  readonly report: LoadReport;
  stop(): Promise<void>;
  /** Checks every key through `storage` (on the primary, directly), and the audit log on `admin`. */
  check(storage: PostgresStorage<Value>, admin: pg.Pool, table: string): Promise<void>;
}

const COOL_MS = 1500;
// The database's clock and ours are the same machine's; statements land between the call and its answer.
const SLACK_MS = 30;

/**
 * Starts lanes of operations (read, has, write, write-back, update, delete)
 * over disjoint keys, each lane one operation at a time through a randomly
 * chosen isolate, and checks every answer against a model:
 *
 * - a read or has answered by the primary sees a state the key may be in;
 *   one that a stale server may have answered sees a state the key once held;
 * - a resolved write, write-back, update or delete settles the key's state;
 *   a rejection not in doubt leaves it as it was; one in doubt adds its
 *   effect as possible (and the key rests a moment, for a commit in flight);
 * - `update()` answers its patch merged onto a possible state;
 * - afterwards (check): every key holds a possible state, and the audit log
 *   holds each resolved update's marker exactly once, each update rejected
 *   not in doubt never, one in doubt at most once; each resolved write's
 *   marker at least once, each rejected not in doubt never.
 *
 * Any rejection that is not a PostgresStorageError is a violation too.
 */
export function startLoad(options: LoadOptions): Load {
  const { isolates, random } = options;
  const report: LoadReport = {
    operations: 0,
    succeeded: 0,
    failed: 0,
    failedInDoubt: 0,
    staleReads: 0,
    expiredReads: 0,
    prunes: 0,
    pruned: 0,
    violations: [],
  };
  const keys = new Map<string, KeyState>();
  const outcomes = new Map<string, { kind: "update" | "write"; outcome: Outcome }>();
  let running = true;
  let serial = 0;
  const violation = (text: string) => {
    if (report.violations.length < 200) report.violations.push(text);
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  const lane = async (laneNo: number) => {
    const own = Array.from({ length: options.keysPerLane }, (_, i) => `lane${laneNo}:key${i}`);
    for (const key of own) keys.set(key, { possible: new Set([ABSENT]), history: new Set([ABSENT]), coolUntil: 0 });
    while (running) {
      const now = performance.now();
      const ready = own.filter((key) => (keys.get(key) as KeyState).coolUntil <= now);
      if (ready.length === 0) {
        await sleep(50);
        continue;
      }
      const key = pick(ready);
      const state = keys.get(key) as KeyState;
      const isolateNo = Math.floor(random() * isolates.length);
      const { storage, reader } = isolates[isolateNo] as Isolate;
      const id = `${laneNo}.${(serial += 1)}`;
      const roll = random();
      const settle = (next: Iterable<string>) => {
        state.possible = new Set(next);
        for (const s of state.possible) state.history.add(s);
      };
      const widen = (more: Iterable<string>) => settle([...state.possible, ...more]);
      const observe = (seen: string, stale: boolean, what: string) => {
        if (state.possible.has(seen)) {
          if (!stale) settle([seen]);
          return;
        }
        if (stale && state.history.has(seen)) {
          report.staleReads += 1;
          return;
        }
        violation(`${key}: ${what} saw ${seen}, expected one of ${[...state.possible].join(" | ")}`);
        settle([seen]); // go on from what is there, so one loss is reported once
      };
      let writes = true;
      report.operations += 1;
      try {
        if (roll < 0.25) {
          writes = false;
          const stale = options.staleRisk?.() ?? false;
          const seen = canonical(await reader.read(key));
          observe(seen, stale || (options.staleRisk?.() ?? false), "read");
        } else if (roll < 0.3) {
          writes = false;
          const stale = options.staleRisk?.() ?? false;
          const present = await reader.has(key);
          const fits = (s: string) => (s !== ABSENT) === present;
          if ([...state.possible].some(fits)) {
            if (!(stale || (options.staleRisk?.() ?? false))) settle([...state.possible].filter(fits));
          } else if (!(stale && [...state.history].some(fits))) {
            violation(`${key}: has() said ${present}, expected one of ${[...state.possible].join(" | ")}`);
          } else report.staleReads += 1;
        } else if (roll < 0.5) {
          const marker = `w${id}`;
          const value = { last: marker, w: id };
          // A new value replaces the row; after a write-back's read of this isolate that found none, it is grammY's
          // initial() to this storage, and lands onto a row another isolate created meanwhile.
          const results = [canonical(value), ...[...state.possible].map((s) => merged(s, value))];
          await tracked(marker, "write", () => storage.write(key, value), results);
        } else if (roll < 0.62) {
          // A write-back: a read, then a write of what was read with a change, through the same isolate.
          const stale = options.staleRisk?.() ?? false;
          const read = await storage.read(key);
          const seen = canonical(read);
          observe(seen, stale || (options.staleRisk?.() ?? false), "read before a write-back");
          const marker = `b${id}`;
          const change = { last: marker, b: id };
          const value = { ...(read ?? {}), ...change };
          // Applied as a plain write, or as its change onto what the row holds (what was read, unless stale).
          const results = [canonical(value), ...[...state.possible].map((s) => merged(s, change))];
          await tracked(marker, "write", () => storage.write(key, value), results);
        } else if (roll < 0.9) {
          const marker = `u${id}`;
          const patch = { last: marker, [marker]: true };
          const results = [...state.possible].map((s) => merged(s, patch));
          const answer = await tracked(marker, "update", () => storage.update(key, patch), results);
          if (answer !== undefined && !results.includes(canonical(answer))) {
            violation(`${key}: update ${marker} answered ${canonical(answer)}, expected one of ${results.join(" | ")}`);
          }
        } else {
          await tracked(undefined, "write", () => storage.delete(key), [ABSENT]);
        }
        report.succeeded += 1;
        options.onResult?.({ isolate: isolateNo, ok: true, writes, inDoubt: false, at: performance.now() });
      } catch (error) {
        report.failed += 1;
        const inDoubt = error instanceof PostgresStorageError && error.inDoubt;
        options.onResult?.({ isolate: isolateNo, ok: false, writes, inDoubt, at: performance.now() });
        if (!(error instanceof PostgresStorageError))
          violation(`${key}: rejected with a foreign error: ${String(error)}`);
        else if (error.inDoubt) report.failedInDoubt += 1;
        state.coolUntil = performance.now() + COOL_MS;
      }
      if (options.pauseMs) await sleep(options.pauseMs);

      /** Runs a write of `marker`; settles the key to `results` (the one answered, for update) or widens it. */
      async function tracked<R>(
        marker: string | undefined,
        kind: "update" | "write",
        write: () => Promise<R>,
        results: string[],
      ): Promise<R> {
        try {
          const answer = await write();
          if (marker !== undefined) outcomes.set(marker, { kind, outcome: "ok" });
          const answered = kind === "update" ? canonical(answer as Value) : undefined;
          settle(answered !== undefined && results.includes(answered) ? [answered] : results);
          return answer;
        } catch (error) {
          const inDoubt = error instanceof PostgresStorageError && error.inDoubt;
          if (marker !== undefined) outcomes.set(marker, { kind, outcome: inDoubt ? "in-doubt" : "not-applied" });
          if (inDoubt) widen(results);
          throw error;
        }
      }
    }
  };

  const ttlLane = async (laneNo: number, ttl: NonNullable<LoadOptions["ttl"]>) => {
    const own = Array.from({ length: 3 }, (_, i) => `ttl${laneNo}:key${i}`);
    const states = new Map<string, TtlState>(own.map((key) => [key, { possible: [], coolUntil: 0 }]));
    for (const state of states.values()) state.possible.push({ state: ABSENT, from: 0, to: 0 });
    while (running) {
      const key = pick(own);
      const state = states.get(key) as TtlState;
      if (state.coolUntil > performance.now()) {
        await sleep(50);
        continue;
      }
      const storage = pick(ttl.storages);
      const roll = random();
      const from = performance.now();
      report.operations += 1;
      try {
        if (roll < 0.45) {
          const seen = canonical(await storage.read(key));
          const to = performance.now();
          // A row written between w.from and w.to expires between w.from + ms and w.to + ms.
          const live = state.possible.filter(
            (p) => p.state === seen && (p.state === ABSENT || from <= p.to + ttl.ms + SLACK_MS),
          );
          const mayBeGone = state.possible.some((p) => p.state === ABSENT || to >= p.from + ttl.ms - SLACK_MS);
          if (live.length > 0) state.possible = live;
          else if (seen === ABSENT && mayBeGone) {
            report.expiredReads += 1;
            state.possible = [{ state: ABSENT, from: 0, to: 0 }];
          } else {
            violation(
              `${key} (ttl): read ${seen} at ${Math.round(from)}..${Math.round(to)}, expected ${JSON.stringify(state.possible)}`,
            );
            state.possible = [{ state: seen, from: 0, to: Number.POSITIVE_INFINITY }];
          }
        } else if (roll < 0.85) {
          const value = { last: `t${laneNo}.${(serial += 1)}` };
          try {
            await storage.write(key, value);
            state.possible = [{ state: canonical(value), from, to: performance.now() }];
          } catch (error) {
            if (error instanceof PostgresStorageError && error.inDoubt) {
              state.possible.push({ state: canonical(value), from, to: performance.now() + COOL_MS });
            }
            throw error;
          }
        } else if (roll < 0.95) {
          try {
            await storage.delete(key);
            state.possible = [{ state: ABSENT, from: 0, to: 0 }];
          } catch (error) {
            if (error instanceof PostgresStorageError && error.inDoubt)
              state.possible.push({ state: ABSENT, from: 0, to: 0 });
            throw error;
          }
        } else {
          report.prunes += 1;
          report.pruned += await storage.prune(); // removes only expired rows: the model is unchanged
        }
        report.succeeded += 1;
      } catch (error) {
        report.failed += 1;
        if (!(error instanceof PostgresStorageError))
          violation(`${key}: rejected with a foreign error: ${String(error)}`);
        else if (error.inDoubt) report.failedInDoubt += 1;
        state.coolUntil = performance.now() + COOL_MS;
      }
      // Slower than the other lanes, so that rows outlive their time to live now and then.
      await sleep(random() * ttl.ms);
    }
  };

  const lanes = Array.from({ length: options.lanes }, (_, i) => lane(i));
  if (options.ttl !== undefined) {
    const ttl = options.ttl;
    for (let i = 0; i < ttl.lanes; i += 1) lanes.push(ttlLane(i, ttl));
  }
  const all = Promise.all(lanes);

  return {
    report,
    async stop() {
      running = false;
      await all;
    },
    async check(storage, admin, table) {
      for (const [key, state] of keys) {
        const seen = canonical(await storage.read(key));
        if (!state.possible.has(seen)) {
          violation(`${key}: holds ${seen} at the end, expected one of ${[...state.possible].join(" | ")}`);
        }
      }
      const { rows } = await admin.query<{ marker: string; n: number }>(
        `SELECT marker, count(*)::int AS n FROM "${table}_log" GROUP BY marker`,
      );
      const applied = new Map(rows.map((row) => [row.marker, row.n]));
      for (const [marker, { kind, outcome }] of outcomes) {
        const n = applied.get(marker) ?? 0;
        if (outcome === "not-applied" && n > 0)
          violation(`${kind} ${marker} was rejected not in doubt, yet applied ${n}×`);
        if (outcome === "ok" && n === 0) violation(`${kind} ${marker} resolved, yet is not on the primary`);
        if (kind === "update" && n > 1) violation(`update ${marker} applied ${n}× (${outcome})`);
      }
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
