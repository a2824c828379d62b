/**
 * `npm run bench` (about five minutes) or `npm run bench -- --quick` (under
 * one): this library beside its peers and beside the bare driver, in one
 * process and one run, interleaved so that machine noise hits every side alike.
 * Writes BENCHMARKS.md and bench/latency.svg (or into `--out DIR`).
 */
import { neonConfig } from "@neondatabase/serverless";
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import ws from "ws";
import { PostgresStorage } from "../src/index.js";
import { startNeonEndpoint, useNeonEndpoint, type NeonConfigLike } from "../test/support/neon-endpoint.js";
import { NeonPool, neonAdapters, pgAdapters, type Adapter, type Value } from "./adapters.js";
import { measureBundles } from "./bundle.js";
import { measureCodecs } from "./codec.js";
import { startDatabase } from "./database.js";
import { peakRss, percentile, rotate, shuffle, throughput, time } from "./measure.js";
import { seededRandom } from "../test/support/fault-proxy.js";
import { writeReport, type Results } from "./report.js";
import { measureRoundTrips } from "./round-trips.js";

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false }, out: { type: "string" } } });
const quick = args.quick ?? false;
const settings = quick
  ? { samples: 240, rounds: 4, throughputMs: 120, throughputRounds: 3, sizeSamples: 12, scanRows: [1_000, 100_000] }
  : { samples: 2_000, rounds: 10, throughputMs: 700, throughputRounds: 4, sizeSamples: 60, scanRows: [1_000, 1_000_000] };
const KEYS = 1_000;
const OPERATIONS = ["read", "write", "has", "update", "delete"] as const;
type Operation = (typeof OPERATIONS)[number];
const log = (line: string) => process.stderr.write(`${line}\n`);

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

  const adapters: Adapter[] = [...(await pgAdapters(pool, table)), ...neonAdapters(database.url, neonPool, table)];
  const pad = (bytes: number) => ({ pad: "x".repeat(Math.max(0, bytes - 20)) });
  log(`${database.label}; seeding ${KEYS} keys per adapter…`);
  for (const adapter of adapters) {
    await adapter.prepare?.();
    await throughput(KEYS, 8, (i) => adapter.write(`k${i}`, { count: 0, ...pad(100) }));
  }

  log("latency per operation…");
  const latencies = new Map<string, number[]>();
  const record = (adapter: Adapter, operation: string, ms: number) => {
    const id = `${adapter.name}|${operation}`;
    latencies.set(id, [...(latencies.get(id) ?? []), ms]);
  };
  // Sample by sample, every adapter of one transport in turn, in a fresh
  // random order each time: a slow moment of the disk or the scheduler then
  // falls on all of them alike, and no adapter always follows the same one.
  const perRound = settings.samples / settings.rounds;
  const random = seededRandom(1);
  const transports = [adapters.filter((a) => a.via === "pg"), adapters.filter((a) => a.via !== "pg")];
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const operation of OPERATIONS) {
      const keyOf = (i: number) => (operation === "delete" ? `del${round}_${i}` : `k${(round * perRound + i) % KEYS}`);
      for (const group of transports) {
        const runs = group.flatMap((adapter) => {
          const run = operationOf(adapter, operation);
          return run === undefined ? [] : [{ adapter, run }];
        });
        if (operation === "delete") {
          for (const { adapter } of runs) for (let i = 0; i < perRound; i += 1) await adapter.write(keyOf(i), { count: 1 });
        }
        for (let i = 0; i < perRound; i += 1) {
          for (const { adapter, run } of shuffle(runs, random)) record(adapter, operation, await time(() => run(keyOf(i), round * perRound + i)));
        }
      }
    }
  }

  log("throughput at concurrency 1, 8 and 32…");
  const rates = new Map<string, number>();
  for (const concurrency of [1, 8, 32]) {
    for (const operation of ["read", "write"] as const) {
      const spent = new Map<string, { ops: number; seconds: number }>();
      for (let round = 0; round < settings.throughputRounds; round += 1) {
        for (const adapter of rotate(adapters, round)) {
          const run = operationOf(adapter, operation) as (key: string, i: number) => Promise<unknown>;
          const offset = (round + 1) * 10_000_000;
          const measured = await throughput(Infinity, concurrency, (i) => run(`k${i % KEYS}`, offset + i), settings.throughputMs);
          const total = spent.get(adapter.name) ?? { ops: 0, seconds: 0 };
          spent.set(adapter.name, { ops: total.ops + measured.ops, seconds: total.seconds + measured.seconds });
        }
      }
      for (const [name, { ops, seconds }] of spent) rates.set(`${name}|${operation}|${concurrency}`, ops / seconds);
    }
  }

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
    await pool.query(`INSERT INTO "${name}" (key, value) SELECT 'chat:' || i, '{"count":1}' FROM generate_series(1, $1::int) AS i`, [rows]);
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

  log("bundle sizes…");
  const bundles = await measureBundles();

  const results: Results = {
    quick,
    database: database.label,
    seconds: (Date.now() - started) / 1000,
    adapters: adapters.map(({ name, via }) => ({ name, via })),
    latency: [...latencies].map(([id, values]) => {
      const [adapter = "", operation = ""] = id.split("|");
      return { adapter, operation, p50: percentile(values, 50), p99: percentile(values, 99), samples: values.length };
    }),
    throughput: [...rates].map(([id, opsPerSecond]) => {
      const [adapter = "", operation = "", concurrency = "0"] = id.split("|");
      return { adapter, operation, concurrency: Number(concurrency), opsPerSecond };
    }),
    sizes: [...sizes].map(([id, { write, read }]) => {
      const [adapter = "", bytes = "0"] = id.split("|");
      return { adapter, bytes: Number(bytes), writeP50: percentile(write, 50), readP50: percentile(read, 50) };
    }),
    roundTrips,
    scans,
    bundles,
    codec,
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

function operationOf(adapter: Adapter, operation: Operation): ((key: string, i: number) => Promise<unknown>) | undefined {
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
      return adapter.update && ((key, i) => (adapter.update as (key: string, patch: Value) => Promise<unknown>)(key, { count: i }));
  }
}
