/**
 * `npm run bench` (about eight minutes) or `npm run bench -- --quick` (about
 * one): this library beside its peers and beside the bare driver, in one
 * process and one run, interleaved so that machine noise hits every side alike.
 * Writes BENCHMARKS.md and bench/latency.svg (or into `--out DIR`). A missed
 * target is reported, never thrown.
 */
import { neonConfig } from "@neondatabase/serverless";
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import ws from "ws";
import { PostgresStorage } from "../src/index.js";
import { startNeonEndpoint, useNeonEndpoint, type NeonConfigLike } from "../dev/neon-endpoint.js";
import { NeonPool, neonAdapters, pgAdapters, type Adapter, type Value } from "./adapters.js";
import { measureBundleParts, measureBundles } from "./bundle.js";
import { measureCodecs } from "./codec.js";
import { measureColdStarts } from "./cold-start.js";
import { measureCompression } from "./compression.js";
import { startDatabase } from "./database.js";
import { startLatencyProxy } from "./latency-proxy.js";
import { peakRss, percentile, rotate, shuffle, throughput, time } from "./measure.js";
import { measureNeonLatency } from "./neon-latency.js";
import { measurePerUpdate } from "./per-update.js";
import { measureHookCost } from "./observe.js";
import { measureSharedSession } from "./shared-session.js";
import { measurePrune, type PruneTiming } from "./prune.js";
import { seededRandom } from "../dev/fault-proxy.js";
import { writeReport, type Results } from "./report.js";
import { measureRoundTrips } from "./round-trips.js";

const { values: args } = parseArgs({
  options: { quick: { type: "boolean", default: false }, out: { type: "string" } },
});
const quick = args.quick ?? false;
const settings = quick
  ? {
      samples: 200,
      rounds: 4,
      throughputMs: 100,
      throughputRounds: 3,
      sizeSamples: 12,
      scanRows: [1_000, 100_000],
      perUpdateRounds: 4,
      perUpdateMs: 100,
      coldStartRounds: 9,
      prune: [{ rows: 100_000, rounds: 2 }],
      neonSamples: 4,
    }
  : {
      samples: 2_000,
      rounds: 10,
      throughputMs: 450,
      throughputRounds: 6,
      sizeSamples: 60,
      scanRows: [1_000, 1_000_000],
      perUpdateRounds: 8,
      perUpdateMs: 400,
      coldStartRounds: 31,
      prune: [
        { rows: 100_000, rounds: 4 },
        { rows: 1_000_000, rounds: 1 },
      ],
      neonSamples: 30,
    };
// Round-trip latency added between the function and the database in the Neon latency section.
const NEON_ROUND_TRIP_MS = 30;
const KEYS = 1_000;
const OPERATIONS = ["read", "write", "has", "update", "delete"] as const;
type Operation = (typeof OPERATIONS)[number];
const launched = performance.now();
const log = (line: string) =>
  process.stderr.write(`[${((performance.now() - launched) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

const database = await startDatabase();
const tables: string[] = [];
const table = (label: string) => {
  const name = `bench_${label}_${process.pid}`;
  tables.push(name);
  return name;
};
const pool = new pg.Pool({ connectionString: database.url, max: 32 });
const endpoint = await startNeonEndpoint();
useNeonEndpoint(neonConfig as NeonConfigLike, endpoint, ws);
const neonPool = new NeonPool({ connectionString: database.url, max: 8 });
const started = Date.now();

try {
  // First, while nothing else runs: it measures CPU alone.
  log("encoding a session: the default codec before and now, and plain JSON…");
  const codec = measureCodecs(quick);

  const adapters: Adapter[] = [
    ...(await pgAdapters(pool, table, { prepared: database.sessionPerConnection })),
    ...neonAdapters(database.url, neonPool, table),
  ];
  const pad = (bytes: number) => ({ pad: "x".repeat(Math.max(0, bytes - 20)) });
  log(`${database.label}; seeding ${KEYS} keys per adapter…`);
  for (const adapter of adapters) {
    await adapter.prepare?.();
    await throughput(KEYS, 8, (i) => adapter.write(`k${i}`, { count: 0, ...pad(100) }));
    await throughput(KEYS, 8, (i) => adapter.write(`w${i}`, { count: 0, ...pad(100) }));
  }

  log("latency per operation…");
  // Per (adapter, operation), the samples of each round apart, for ratios round by round.
  const latencies = new Map<string, number[][]>();
  const record = (adapter: Adapter, operation: string, round: number, ms: number) => {
    const id = `${adapter.name}|${operation}`;
    const rounds = latencies.get(id) ?? [];
    (rounds[round] ??= []).push(ms);
    latencies.set(id, rounds);
  };
  // Sample by sample, every adapter of one transport in turn, in a fresh
  // random order each time: a slow moment of the disk or the scheduler then
  // falls on all of them alike, and no adapter always follows the same one.
  const perRound = settings.samples / settings.rounds;
  const random = seededRandom(1);
  const transports = [adapters.filter((a) => a.via === "pg"), adapters.filter((a) => a.via !== "pg")];
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const operation of OPERATIONS) {
      const keyOf = (i: number) =>
        operation === "delete" ? `del${round}_${i}` : `${keyPrefix(operation)}${(round * perRound + i) % KEYS}`;
      for (const group of transports) {
        const runs = group.flatMap((adapter) => {
          const run = operationOf(adapter, operation);
          return run === undefined ? [] : [{ adapter, run }];
        });
        if (operation === "delete") {
          for (const { adapter } of runs)
            for (let i = 0; i < perRound; i += 1) await adapter.write(keyOf(i), { count: 1 });
        }
        for (let i = 0; i < perRound; i += 1) {
          for (const { adapter, run } of shuffle(runs, random))
            record(adapter, operation, round, await time(() => run(keyOf(i), round * perRound + i)));
        }
      }
    }
  }

  log("throughput at concurrency 1, 8 and 32…");
  // Per (adapter, operation, concurrency), operations per second in each round, and this process's CPU per operation.
  const rates = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (const concurrency of [1, 8, 32]) {
    for (const operation of ["read", "write"] as const) {
      for (let round = 0; round < settings.throughputRounds; round += 1) {
        for (const adapter of rotate(adapters, round)) {
          const run = operationOf(adapter, operation) as (key: string, i: number) => Promise<unknown>;
          const offset = (round + 1) * 10_000_000;
          const used = process.cpuUsage();
          const measured = await throughput(
            Infinity,
            concurrency,
            (i) => run(`${keyPrefix(operation)}${i % KEYS}`, offset + i),
            settings.throughputMs,
          );
          const { user, system } = process.cpuUsage(used);
          const id = `${adapter.name}|${operation}|${concurrency}`;
          rates.set(id, [...(rates.get(id) ?? []), measured.ops / measured.seconds]);
          cpu.set(id, [...(cpu.get(id) ?? []), (user + system) / measured.ops]);
        }
      }
    }
  }

  log(`per grammY update, concurrency 1 and 32, ${settings.perUpdateRounds} rounds…`);
  const perUpdate = await measurePerUpdate(database.url, table, {
    rounds: settings.perUpdateRounds,
    milliseconds: settings.perUpdateMs,
    concurrencies: [1, 32],
  });

  log(`two isolates sharing sessions, ${settings.perUpdateRounds} rounds…`);
  const sharedSession = await measureSharedSession(database.url, table, {
    rounds: settings.perUpdateRounds,
    milliseconds: settings.perUpdateMs,
    chats: 4,
  });

  log("what observability costs…");
  const hookCost = await measureHookCost(pool, table, {
    rounds: settings.perUpdateRounds,
    operations: quick ? 200 : 1_000,
  });

  log("value sizes 100 B, 10 KB, 1 MB…");
  const sizes = new Map<string, { write: number[]; read: number[] }>();
  const pgOnly = adapters.filter((adapter) => adapter.via === "pg");
  for (const bytes of [100, 10_000, 1_000_000]) {
    for (let sample = 0; sample < settings.sizeSamples; sample += 1) {
      for (const adapter of rotate(pgOnly, sample)) {
        const id = `${adapter.name}|${bytes}`;
        const entry = sizes.get(id) ?? { write: [], read: [] };
        entry.write.push(await time(() => adapter.write(`size${bytes}`, { count: sample, ...pad(bytes) })));
        entry.read.push(await time(() => adapter.read(`size${bytes}`)));
        sizes.set(id, entry);
      }
    }
  }

  log("statements per grammY update…");
  const roundTrips = await measureRoundTrips(database.url, table);

  log(`readAllKeys over ${settings.scanRows.join(" and ")} rows…`);
  const scans: Results["scans"][number][] = [];
  for (const rows of settings.scanRows) {
    const name = table(`scan_${rows}`);
    const storage = new PostgresStorage({ client: pool, tableName: name });
    await storage.createTable();
    await pool.query(
      `INSERT INTO "${name}" (key, value) SELECT 'chat:' || i, '{"count":1}' FROM generate_series(1, $1::int) AS i`,
      [rows],
    );
    // One pass unmeasured first: the first pass over a large table grows V8's
    // young generation to suit the allocation rate, which is not memory the scan keeps.
    for await (const _ of storage.readAllKeys());
    const started = performance.now();
    const { peakMb, result: counted } = await peakRss(async () => {
      let count = 0;
      for await (const _ of storage.readAllKeys()) count += 1;
      return count;
    });
    const seconds = (performance.now() - started) / 1000;
    const naive = await peakRss(async () => (await pool.query(`SELECT key FROM "${name}"`)).rowCount);
    scans.push({ rows, counted, seconds, peakMb, naivePeakMb: naive.peakMb });
    await pool.query(`DROP TABLE "${name}"`);
  }

  log("cold start with the table missing…");
  const coldStarts = await measureColdStarts(database.url, pool, table, settings.coldStartRounds);

  const prune: PruneTiming[] = [];
  for (const { rows, rounds } of settings.prune) {
    log(`prune() of ${rows.toLocaleString("en")} expired rows beside one bare DELETE…`);
    prune.push(await measurePrune(pool, table, rows, rounds));
  }

  log(`through Neon's driver with ${NEON_ROUND_TRIP_MS} ms more per round trip…`);
  const proxy = await startLatencyProxy(endpoint.port, NEON_ROUND_TRIP_MS);
  useNeonEndpoint(neonConfig as NeonConfigLike, proxy, ws);
  let neonLatency: Results["neonLatency"];
  try {
    neonLatency = await measureNeonLatency(database.url, NEON_ROUND_TRIP_MS, table, settings.neonSamples);
  } finally {
    useNeonEndpoint(neonConfig as NeonConfigLike, endpoint, ws);
    await proxy.stop();
  }

  log("conversation state, plain and compressed…");
  const compression = await measureCompression(database.url, table, quick);

  log("bundle sizes…");
  const bundles = await measureBundles();
  const bundleParts = await measureBundleParts();

  const results: Results = {
    quick,
    database: database.label,
    seconds: (Date.now() - started) / 1000,
    adapters: adapters.map(({ name, via }) => ({ name, via })),
    latency: [...latencies].map(([id, rounds]) => {
      const [adapter = "", operation = ""] = id.split("|");
      const values = rounds.flat();
      return {
        adapter,
        operation,
        p50: percentile(values, 50),
        p99: percentile(values, 99),
        samples: values.length,
        roundP50s: rounds.map((samples) => percentile(samples, 50)),
      };
    }),
    throughput: [...rates].map(([id, rounds]) => {
      const [adapter = "", operation = "", concurrency = "0"] = id.split("|");
      // Over all rounds: each round ran for the same time.
      const opsPerSecond = rounds.reduce((sum, rate) => sum + rate, 0) / rounds.length;
      return {
        adapter,
        operation,
        concurrency: Number(concurrency),
        opsPerSecond,
        rounds,
        cpuMicros: cpu.get(id) ?? [],
      };
    }),
    perUpdate,
    sharedSession,
    hookCost,
    coldStarts,
    prune,
    neonLatency,
    sizes: [...sizes].map(([id, { write, read }]) => {
      const [adapter = "", bytes = "0"] = id.split("|");
      return { adapter, bytes: Number(bytes), writeP50: percentile(write, 50), readP50: percentile(read, 50) };
    }),
    roundTrips,
    scans,
    bundles,
    bundleParts,
    codec,
    compression,
  };
  const out = args.out ?? ".";
  mkdirSync(out, { recursive: true });
  const printed = writeReport(results, out);
  console.log(printed);
} finally {
  for (const name of tables) await pool.query(`DROP TABLE IF EXISTS "${name}"`).catch(() => {});
  await neonPool.end();
  await pool.end();
  await endpoint.stop();
  await database.stop();
}

/**
 * Writes go to keys of their own: a write of a key this storage read a moment ago
 * (and never wrote back) is that read's write-back, merged onto the row, which the
 * per-update sections measure; here a write is a plain write, as on the other adapters.
 */
function keyPrefix(operation: Operation): string {
  return operation === "write" ? "w" : "k";
}

function operationOf(
  adapter: Adapter,
  operation: Operation,
): ((key: string, i: number) => Promise<unknown>) | undefined {
  switch (operation) {
    case "read":
      return (key) => adapter.read(key);
    case "write":
      // A different value every time: a write of an unchanged value would be skipped.
      return (key, i) => adapter.write(key, { count: i, pad: "x".repeat(80) } satisfies Value);
    case "delete":
      return (key) => adapter.delete(key);
    case "has":
      return adapter.has && ((key) => (adapter.has as (key: string) => Promise<boolean>)(key));
    case "update":
      return (
        adapter.update &&
        ((key, i) => (adapter.update as (key: string, patch: Value) => Promise<unknown>)(key, { count: i }))
      );
  }
}
