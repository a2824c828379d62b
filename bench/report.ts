import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BundleSize } from "./bundle.js";
import type { CodecTimings } from "./codec.js";
import type { RoundTrips } from "./round-trips.js";

/** Everything one run measured. */
export interface Results {
  readonly quick: boolean;
  readonly database: string;
  readonly seconds: number;
  readonly adapters: readonly { name: string; via: string }[];
  readonly latency: readonly { adapter: string; operation: string; p50: number; p99: number; samples: number }[];
  readonly throughput: readonly { adapter: string; operation: string; concurrency: number; opsPerSecond: number }[];
  readonly sizes: readonly { adapter: string; bytes: number; writeP50: number; readP50: number }[];
  readonly roundTrips: readonly RoundTrips[];
  readonly scans: readonly { rows: number; counted: number; seconds: number; peakMb: number; naivePeakMb: number }[];
  readonly bundles: readonly BundleSize[];
  readonly codec: CodecTimings;
}

const OURS = "grammy-postgres-storage";
const BARE = "bare pool.query";
const PEERS = ["@grammyjs/storage-psql", "@telegraf/session/pg"];
const OPERATIONS = ["read", "write", "has", "update", "delete"];
const root = fileURLToPath(new URL("..", import.meta.url));

const ms = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? "–" : value.toFixed(value < 10 ? 3 : 1));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

function version(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n");
}

/** Writes BENCHMARKS.md and the latency chart into `out`; answers the markdown, for the terminal too. */
export function writeReport(results: Results, out: string): string {
  const latency = (adapter: string, operation: string) => results.latency.find((l) => l.adapter === adapter && l.operation === operation);
  const rate = (adapter: string, operation: string, concurrency: number) =>
    results.throughput.find((t) => t.adapter === adapter && t.operation === operation && t.concurrency === concurrency)?.opsPerSecond;
  const ours = results.roundTrips.find((r) => r.adapter === OURS);
  const bundle = results.bundles[0];
  const largest = results.scans.at(-1);
  const smallest = results.scans[0];

  const overhead = (operation: string) => (latency(OURS, operation)?.p50 ?? Number.NaN) / (latency(BARE, operation)?.p50 ?? Number.NaN) - 1;
  const c32 = (adapter: string) => ((rate(adapter, "read", 32) ?? 0) + (rate(adapter, "write", 32) ?? 0)) / 2;
  const targets: [string, string, boolean][] = [
    ["read p50 within 10% of the bare query (pg)", `${(overhead("read") * 100).toFixed(1)}% over`, overhead("read") <= 0.1],
    ["write p50 within 10% of the bare query (pg)", `${(overhead("write") * 100).toFixed(1)}% over`, overhead("write") <= 0.1],
    ...PEERS.map((peer): [string, string, boolean] => [
      `throughput at concurrency 32 at least ${peer}'s (mean of read and write)`,
      `${c32(OURS).toFixed(0)} vs ${c32(peer).toFixed(0)} ops/s (${ratio(c32(OURS), c32(peer))})`,
      c32(OURS) >= c32(peer),
    ]),
    ["1 statement for a read-only update", String(ours?.readOnly), ours?.readOnly === 1],
    ["2 statements for a modifying update", String(ours?.modifying), ours?.modifying === 2],
    ["0 statements for an untouched lazySession", String(ours?.lazyUntouched), ours?.lazyUntouched === 0],
    ["cold start with the table present costs no extra statement", `${ours?.coldStartTableExists} (= a warm first update)`, ours?.coldStartTableExists === 2],
    [
      "readAllKeys in constant memory",
      `peak RSS +${largest?.peakMb.toFixed(1)} MB over ${largest?.rows.toLocaleString("en")} rows, +${smallest?.peakMb.toFixed(1)} MB over ${smallest?.rows.toLocaleString("en")}`,
      (largest?.peakMb ?? Infinity) < 64,
    ],
    ["library bundle under 5 KB min+gzip (PostgresStorage, as a bot imports it)", bundle ? kb(bundle.gzipped) : "–", (bundle?.gzipped ?? Infinity) < 5 * 1024],
  ];

  const pgAdapters = results.adapters.filter((a) => a.via === "pg").map((a) => a.name);
  const neonAdapters = results.adapters.filter((a) => a.via !== "pg").map((a) => a.name);
  const latencyTable = (names: string[], bare: (name: string) => string) =>
    table(
      ["adapter", ...OPERATIONS.map((op) => `${op} p50 / p99`), "read, write p50 vs bare"],
      names.map((name) => [
        name,
        ...OPERATIONS.map((op) => {
          const l = latency(name, op);
          return l ? `${ms(l.p50)} / ${ms(l.p99)}` : "n/a";
        }),
        `${ratio(latency(name, "read")?.p50, latency(bare(name), "read")?.p50)}, ${ratio(latency(name, "write")?.p50, latency(bare(name), "write")?.p50)}`,
      ]),
    );
  const neonBare = (name: string) => (name.includes("HTTP") ? "bare neon() HTTP" : "bare Neon Pool");

  const samples = results.latency.find((l) => l.adapter === OURS && l.operation === "read")?.samples ?? 0;
  const svgName = out === "." ? "bench/latency.svg" : "latency.svg";
  const markdown = `# Benchmarks

Measured by \`npm run bench${results.quick ? " -- --quick" : ""}\` on ${new Date().toISOString().slice(0, 10)}, in ${results.seconds.toFixed(0)} s. Every
adapter ran in one process, on one database, in interleaved rounds, so that
machine noise hit every side alike. Latencies are in milliseconds (${samples} samples per
operation and adapter). "Bare" is a \`pool.query\` of the very statement this library
sends: the limit any adapter can reach.

- Machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}
- Database: ${results.database}
- Versions: grammy-postgres-storage ${version("../")}, pg ${version("pg")}, @neondatabase/serverless ${version("@neondatabase/serverless")}, grammy ${version("grammy")}, @grammyjs/storage-psql ${version("@grammyjs/storage-psql")}, @telegraf/session ${version("@telegraf/session")} (kysely ${version("kysely")})
- Neon rows go through the real Neon driver and the local Neon endpoint (\`test/support/neon-endpoint.ts\`) on loopback, so they show the driver's and the library's cost, not Neon's network.

## Targets

${table(["target", "measured", "met"], targets.map(([target, measured, met]) => [target, measured, met ? "yes" : "**no**"]))}

### Reading the targets

- Where this library trails \`@grammyjs/storage-psql\`, compare it with the bare
  row: the bare query sends this library's own statement, and this library keeps
  pace with it (c=32: ${ratio(c32(OURS), c32(BARE))} of bare). The difference to storage-psql is the
  statement and the table, not this library's code: a \`json\` column that
  PostgreSQL checks on every write (storage-psql stores \`text\`), the expiry
  columns, and the live-row condition on every read. They buy a value column you
  can query, TTL, and refusing non-JSON before it is stored.
- The bundle counts everything \`PostgresStorage\` does: lazy table creation,
  retries with their error classification, Standard Schema validation, the memory
  that skips unchanged writes, key and option checks, the default codec (about 5 KB of the
  minified size: the walk that refuses what JSON would change, and messages that
  name the path and the codec to use instead), and error messages that say what to
  do. The other codecs and \`sessionKey\` are tree-shaken away unless imported.

## Latency per operation through \`pg\`

![p50 latency per operation and adapter](${svgName})

${latencyTable(pgAdapters, () => BARE)}

The peers have no \`has\` and no atomic \`update\`.

## Latency through Neon's driver

${latencyTable(neonAdapters, neonBare)}

## Throughput (operations per second)

${table(
  ["adapter", ...[1, 8, 32].flatMap((c) => [`read c=${c}`, `write c=${c}`]), "c=32 vs this library"],
  results.adapters.map(({ name }) => [
    name,
    ...[1, 8, 32].flatMap((c) => [(rate(name, "read", c) ?? 0).toFixed(0), (rate(name, "write", c) ?? 0).toFixed(0)]),
    ratio(c32(name), c32(OURS)),
  ]),
)}

## Value sizes (p50 ms, through \`pg\`)

${table(
  ["adapter", ...[100, 10_000, 1_000_000].flatMap((b) => [`write ${b.toLocaleString("en")} B`, `read ${b.toLocaleString("en")} B`])],
  pgAdapters.map((name) => [
    name,
    ...[100, 10_000, 1_000_000].flatMap((bytes) => {
      const s = results.sizes.find((size) => size.adapter === name && size.bytes === bytes);
      return [ms(s?.writeP50), ms(s?.readP50)];
    }),
  ]),
)}

## Statements per grammY update

The same bot on each adapter; a cold start is a new pool and a new adapter, as in a
fresh process, with what creating the adapter costs counted in.

${table(
  ["adapter", "read-only", "modifying", "lazySession untouched", "cold start, table exists", "cold start, table missing"],
  results.roundTrips.map((r) => [r.adapter, String(r.readOnly), String(r.modifying), String(r.lazyUntouched), String(r.coldStartTableExists), String(r.coldStartTableMissing)]),
)}

## readAllKeys

Keyset pagination, 1000 keys per page. Peak RSS is the process's resident memory
above where it started; "one query" is \`SELECT key\` of the whole table at once, for
comparison.

${table(
  ["rows", "keys listed", "seconds", "peak RSS, readAllKeys", "peak RSS, one query"],
  results.scans.map((s) => [s.rows.toLocaleString("en"), s.counted.toLocaleString("en"), s.seconds.toFixed(2), `+${s.peakMb.toFixed(1)} MB`, `+${s.naivePeakMb.toFixed(1)} MB`]),
)}

## Bundle size (esbuild, minified)

${table(["bundle", "minified", "min + gzip"], results.bundles.map((b) => [b.name, kb(b.minified), kb(b.gzipped)]))}

## Encoding a session (the default codec)

One walk that refuses what JSON would change, then \`JSON.stringify\` without a replacer, beside the replacer it replaced and
plain JSON: median nanoseconds per encode of a ${results.codec.bytes.toLocaleString("en")}-byte session, interleaved, CPU only (\`bench/codec.ts\`).

${table(
  ["encoder", "ns per encode", "vs before"],
  [
    ["before: \`JSON.stringify(value, refuseLossy)\`", results.codec.previous.toFixed(0), "1.00×"],
    ["now: \`strictJson.stringify(value)\`", results.codec.current.toFixed(0), ratio(results.codec.current, results.codec.previous)],
    ["floor: plain \`JSON.stringify(value)\`", results.codec.plain.toFixed(0), ratio(results.codec.plain, results.codec.previous)],
  ],
)}
`;
  writeFileSync(join(out, "BENCHMARKS.md"), markdown);
  writeFileSync(join(out, out === "." ? join("bench", "latency.svg") : "latency.svg"), chart(results, pgAdapters));
  return markdown;
}

const COLORS = ["#9aa0a6", "#1a73e8", "#e8710a", "#188038", "#a142f4", "#d01884"];

/** A grouped bar chart of p50 latency: one group per operation, one bar per adapter. */
function chart(results: Results, adapters: string[]): string {
  const width = 760;
  const height = 340;
  const left = 60;
  const bottom = 280;
  const top = 30;
  const groupWidth = (width - left - 20) / OPERATIONS.length;
  const barWidth = (groupWidth - 20) / adapters.length;
  const values = results.latency.filter((l) => adapters.includes(l.adapter)).map((l) => l.p50);
  const max = Math.max(...values, 0.001) * 1.1;
  const y = (value: number) => bottom - ((bottom - top) * value) / max;
  const parts: string[] = [];
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (max * tick) / 4;
    parts.push(`<line x1="${left}" x2="${width - 20}" y1="${y(value)}" y2="${y(value)}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${left - 6}" y="${y(value) + 4}" text-anchor="end" font-size="11">${value.toFixed(2)}</text>`);
  }
  OPERATIONS.forEach((operation, g) => {
    const x0 = left + g * groupWidth + 10;
    adapters.forEach((adapter, a) => {
      const l = results.latency.find((entry) => entry.adapter === adapter && entry.operation === operation);
      if (l === undefined) return;
      const x = x0 + a * barWidth;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(l.p50).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(bottom - y(l.p50)).toFixed(1)}" fill="${COLORS[a % COLORS.length]}"><title>${adapter} ${operation}: p50 ${l.p50.toFixed(3)} ms</title></rect>`,
      );
    });
    parts.push(`<text x="${(x0 + (groupWidth - 20) / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle" font-size="12">${operation}</text>`);
  });
  adapters.forEach((adapter, a) => {
    const x = left + (a % 2) * 330;
    const row = bottom + 34 + Math.floor(a / 2) * 16;
    parts.push(`<rect x="${x}" y="${row - 9}" width="10" height="10" fill="${COLORS[a % COLORS.length]}"/>`);
    parts.push(`<text x="${x + 14}" y="${row}" font-size="12">${adapter}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 20}" font-family="sans-serif">
<text x="${left}" y="18" font-size="14">p50 latency per operation, ms (lower is better)</text>
${parts.join("\n")}
</svg>
`;
}
