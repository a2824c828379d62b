import { PsqlAdapter } from "@grammyjs/storage-psql";
import { Pool as NeonPool, neon } from "@neondatabase/serverless";
import type { StorageAdapter } from "grammy";
import type pg from "pg";
import { seededRandom } from "../dev/fault-proxy.js";
import { PostgresStorage } from "../src/index.js";
import { OURS, PSQL, bots, type Bots, type Counter } from "./bots.js";
import { shuffle } from "./measure.js";

/** How the function reaches Neon. */
export const NEON_TRANSPORTS = ["neon() HTTP", "Neon Pool per update"] as const;
export type NeonTransport = (typeof NEON_TRANSPORTS)[number];
export const NEON_KINDS = ["read-only", "modifying"] as const;

/** Milliseconds per update of one adapter on one transport, one sample per update. */
export interface NeonLatency {
  readonly adapter: string;
  readonly transport: NeonTransport;
  readonly kind: (typeof NEON_KINDS)[number];
  readonly ms: number[];
}

export interface NeonLatencyResults {
  readonly roundTripMs: number;
  /** One bare `SELECT 1` through neon() over HTTP: the price of one round trip, as measured. */
  readonly bareHttpMs: number[];
  readonly latencies: NeonLatency[];
}

/** One update, timed; `handle` builds whatever a request would build. */
type Sample = (kind: (typeof NEON_KINDS)[number], chat: number) => Promise<number>;

/**
 * Per-update latency at concurrency 1 through Neon's driver, with the Neon
 * driver already pointed (by the caller) at a proxy that adds `roundTripMs` to
 * every round trip. Two transports, as a function on Workers or Vercel Edge
 * would use them:
 *
 * - `neon()` over HTTP, created once per isolate, with a storage and bot that
 *   live as long (storage-psql's `create()` runs once, before any sample);
 * - a Neon `Pool` created inside the request and ended after it (as
 *   `ctx.waitUntil(pool.end())` would, so ending is not timed), with the
 *   storage and bot built on it per request. storage-psql can only be built by
 *   its `create()`, which sends its two DDL statements each time.
 *
 * storage-psql reads `{ rows }` from its client: `neon()` gives it that with
 * `fullResults: true`; a Neon Pool is pg-compatible as it is. Every sample
 * visits every (adapter, transport, kind) once, in a random order.
 */
export async function measureNeonLatency(
  url: string,
  roundTripMs: number,
  tables: (label: string) => string,
  samples: number,
): Promise<NeonLatencyResults> {
  const http = neon(url);
  const ourHttpTable = tables("neonlat_ours_http");
  const psqlHttpTable = tables("neonlat_psql_http");
  const ourPoolTable = tables("neonlat_ours_pool");
  const psqlPoolTable = tables("neonlat_psql_pool");
  const ourHttpBots = bots(new PostgresStorage<Counter>({ client: http, tableName: ourHttpTable }));
  const psqlHttp = neon(url, { fullResults: true });
  const psqlHttpBots = bots(
    (await PsqlAdapter.create({
      client: psqlHttp as unknown as pg.Client,
      tableName: psqlHttpTable,
    })) as StorageAdapter<Counter>,
  );

  const timed = async (work: () => Promise<void>) => {
    const started = performance.now();
    await work();
    return performance.now() - started;
  };
  const warm =
    (b: Bots): Sample =>
    (kind, chat) =>
      timed(() => b.handle(kind, chat));
  const perRequest =
    (build: (pool: NeonPool) => Promise<StorageAdapter<Counter>>): Sample =>
    async (kind, chat) => {
      let pool: NeonPool | undefined;
      try {
        return await timed(async () => {
          pool = new NeonPool({ connectionString: url });
          pool.on("error", () => {});
          await bots(await build(pool)).handle(kind, chat);
        });
      } finally {
        await pool?.end();
      }
    };
  const runs: { adapter: string; transport: NeonTransport; sample: Sample }[] = [
    { adapter: OURS, transport: "neon() HTTP", sample: warm(ourHttpBots) },
    { adapter: PSQL, transport: "neon() HTTP", sample: warm(psqlHttpBots) },
    {
      adapter: OURS,
      transport: "Neon Pool per update",
      sample: perRequest(async (pool) => new PostgresStorage<Counter>({ client: pool, tableName: ourPoolTable })),
    },
    {
      adapter: PSQL,
      transport: "Neon Pool per update",
      sample: perRequest(
        async (pool) =>
          (await PsqlAdapter.create({
            client: pool as unknown as pg.Client,
            tableName: psqlPoolTable,
          })) as StorageAdapter<Counter>,
      ),
    },
  ];
  const cases = runs.flatMap((run) => NEON_KINDS.map((kind) => ({ ...run, kind, ms: [] as number[] })));
  const bareHttpMs: number[] = [];
  const random = seededRandom(7);
  // One unkept sample first: the tables exist, sessions are stored, the code is warm.
  for (let sample = -1; sample < samples; sample += 1) {
    for (const entry of shuffle(cases, random)) {
      const ms = await entry.sample(entry.kind, 1);
      if (sample >= 0) entry.ms.push(ms);
    }
    const ms = await timed(async () => void (await http.query("SELECT 1", [])));
    if (sample >= 0) bareHttpMs.push(ms);
  }
  return {
    roundTripMs,
    bareHttpMs,
    latencies: cases.map(({ adapter, transport, kind, ms }) => ({ adapter, transport, kind, ms })),
  };
}
