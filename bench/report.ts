import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BARE, BARE_PREPARED } from "./adapters.js";
import { OURS, PSQL, TELEGRAF, UPDATE_KINDS } from "./bots.js";
import type { BundlePart, BundleSize } from "./bundle.js";
import type { CodecTimings } from "./codec.js";
import type { ColdStart } from "./cold-start.js";
import type { CompressionResults } from "./compression.js";
import type { HookCost } from "./observe.js";
import type { SharedSession } from "./shared-session.js";
import { median, percentile, ratioSpread, type RatioSpread } from "./measure.js";
import { NEON_KINDS, NEON_TRANSPORTS, type NeonLatencyResults } from "./neon-latency.js";
import { PER_UPDATE_POOL_SIZE, type PerUpdate } from "./per-update.js";
import type { PruneTiming } from "./prune.js";
import type { RoundTrips } from "./round-trips.js";

/** Everything one run measured. */
export interface Results {
  readonly quick: boolean;
  readonly database: string;
  readonly seconds: number;
  readonly adapters: readonly { name: string; via: string }[];
  /** `roundP50s`: the p50 of each round apart, for ratios round by round. */
  readonly latency: readonly {
    adapter: string;
    operation: string;
    p50: number;
    p99: number;
    samples: number;
    roundP50s: number[];
  }[];
  /** `opsPerSecond`: the mean over `rounds`, the rate of each round; `cpuMicros`: this process's CPU per operation, each round. */
  readonly throughput: readonly {
    adapter: string;
    operation: string;
    concurrency: number;
    opsPerSecond: number;
    rounds: number[];
    cpuMicros: number[];
  }[];
  readonly perUpdate: readonly PerUpdate[];
  readonly sharedSession: readonly SharedSession[];
  readonly hookCost: readonly HookCost[];
  readonly coldStarts: readonly ColdStart[];
  readonly prune: readonly PruneTiming[];
  readonly neonLatency: NeonLatencyResults;
  readonly sizes: readonly { adapter: string; bytes: number; writeP50: number; readP50: number }[];
  readonly roundTrips: readonly RoundTrips[];
  readonly scans: readonly { rows: number; counted: number; seconds: number; peakMb: number; naivePeakMb: number }[];
  readonly bundles: readonly BundleSize[];
  readonly bundleParts: readonly BundlePart[];
  readonly codec: CodecTimings;
  readonly compression: CompressionResults;
}

const OPERATIONS = ["read", "write", "has", "update", "delete"];
const root = fileURLToPath(new URL("..", import.meta.url));

const ms = (value: number | undefined) =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(value < 10 ? 3 : 1);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`;
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
// A ratio within half a hundredth of parity gets a third decimal: "1.00×" would hide which side of a 1.0× target it is.
const times = (value: number) =>
  Number.isNaN(value) ? "–" : `${value.toFixed(value !== 1 && Math.abs(value - 1) < 0.005 ? 3 : 2)}×`;
/** A ratio over rounds: the median, then the smallest and largest round. */
const spread = (r: RatioSpread) =>
  r.rounds === 0 ? "–" : `${times(r.median)} (${r.min.toFixed(2)}–${r.max.toFixed(2)}×)`;
const whole = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? "–" : value.toFixed(0));

function version(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string })
      .version;
  } catch {
    return "?";
  }
}

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

/** The largest modules of the bundle listed one by one; the rest in one row. */
const BUNDLE_PARTS_SHOWN = 14;

function bundlePartRows(parts: readonly BundlePart[]): string[][] {
  const rows = parts.slice(0, BUNDLE_PARTS_SHOWN).map((p) => [`\`${p.module}\``, kb(p.minified), kb(p.gzipped)]);
  const rest = parts.slice(BUNDLE_PARTS_SHOWN);
  if (rest.length === 0) return rows;
  const total = (bytes: (p: BundlePart) => number) => kb(rest.reduce((sum, p) => sum + bytes(p), 0));
  return [...rows, [`the other ${rest.length} modules`, total((p) => p.minified), total((p) => p.gzipped)]];
}

/** Writes BENCHMARKS.md and the latency chart into `out`; answers the markdown, for the terminal too. */
export function writeReport(results: Results, out: string): string {
  const latency = (adapter: string, operation: string) =>
    results.latency.find((l) => l.adapter === adapter && l.operation === operation);
  const throughputOf = (adapter: string, operation: string, concurrency: number) =>
    results.throughput.find((t) => t.adapter === adapter && t.operation === operation && t.concurrency === concurrency);
  const rate = (adapter: string, operation: string, concurrency: number) =>
    throughputOf(adapter, operation, concurrency)?.opsPerSecond;
  const ours = results.roundTrips.find((r) => r.adapter === OURS);
  const bundle = results.bundles[0];
  const largest = results.scans.at(-1);
  const smallest = results.scans[0];

  // Every ratio below pairs two adapters round by round, then takes the median over the rounds.
  const perOperation = (adapter: string, operation: string, concurrency: number) =>
    ratioSpread(
      throughputOf(OURS, operation, concurrency)?.rounds ?? [],
      throughputOf(adapter, operation, concurrency)?.rounds ?? [],
    );
  const overBare = (operation: string) =>
    ratioSpread(latency(OURS, operation)?.roundP50s ?? [], latency(BARE, operation)?.roundP50s ?? []);
  const update = (adapter: string, kind: string, concurrency: number) =>
    results.perUpdate.find((u) => u.adapter === adapter && u.kind === kind && u.concurrency === concurrency);
  const perUpdate = (adapter: string, kind: string, concurrency: number) =>
    ratioSpread(update(OURS, kind, concurrency)?.rates ?? [], update(adapter, kind, concurrency)?.rates ?? []);
  const cold = (adapter: string) => results.coldStarts.find((c) => c.adapter === adapter);
  const coldRatio = ratioSpread(cold(OURS)?.ms ?? [], cold(PSQL)?.ms ?? []);
  const coldConnections = Math.max(...(cold(OURS)?.connections ?? [Infinity]));
  const prune100k = results.prune.find((p) => p.rows === 100_000);
  const pruneRatio = ratioSpread(prune100k?.pruneMs ?? [], prune100k?.deleteMs ?? []);
  const rounds = (r: RatioSpread) => `${r.rounds} round${r.rounds === 1 ? "" : "s"}`;

  type Target = [target: string, measured: string, met: boolean];
  const atLeast = (target: string, r: RatioSpread, goal: number, detail = ""): Target => [
    target,
    `${spread(r)}${detail}, ${rounds(r)}`,
    r.median >= goal,
  ];
  const c32Update = (kind: string) =>
    ` — ${whole(median(update(OURS, kind, 32)?.rates ?? []))} vs ${whole(median(update(PSQL, kind, 32)?.rates ?? []))} updates/s`;
  const c32Op = (operation: string) =>
    ` — ${whole(rate(OURS, operation, 32))} vs ${whole(rate(PSQL, operation, 32))} ops/s`;
  const targets: Target[] = [
    atLeast(
      "c=32 throughput per update, read-only: ≥ 2.2× @grammyjs/storage-psql",
      perUpdate(PSQL, "read-only", 32),
      2.2,
      c32Update("read-only"),
    ),
    atLeast(
      "c=32 throughput per update, modifying: ≥ 1.2× @grammyjs/storage-psql",
      perUpdate(PSQL, "modifying", 32),
      1.2,
      c32Update("modifying"),
    ),
    atLeast(
      "c=32 throughput per operation, read: ≥ 1.1× @grammyjs/storage-psql",
      perOperation(PSQL, "read", 32),
      1.1,
      c32Op("read"),
    ),
    atLeast(
      "c=32 throughput per operation, write: ≥ 1.1× @grammyjs/storage-psql",
      perOperation(PSQL, "write", 32),
      1.1,
      c32Op("write"),
    ),
    (() => {
      // Lower is better: the ratio of our CPU per update to storage-psql's, round by round.
      const r = ratioSpread(
        update(OURS, "modifying", 32)?.cpuMicros ?? [],
        update(PSQL, "modifying", 32)?.cpuMicros ?? [],
      );
      return [
        "c=32 Node CPU per modifying update: ≤ 1.0× @grammyjs/storage-psql's",
        `${spread(r)} — ${whole(median(update(OURS, "modifying", 32)?.cpuMicros ?? []))} vs ${whole(median(update(PSQL, "modifying", 32)?.cpuMicros ?? []))} µs, ${rounds(r)}`,
        r.median <= 1.0,
      ] satisfies Target;
    })(),
    ...(["read", "write"] as const).map((operation): Target => {
      const r = overBare(operation);
      return [
        `${operation} p50 ≤ 1.0× the bare unprepared statement (pg)`,
        `${spread(r)} — ${ms(latency(OURS, operation)?.p50)} vs ${ms(latency(BARE, operation)?.p50)} ms over all rounds, ${rounds(r)}`,
        r.median <= 1.0,
      ];
    }),
    [
      "cold start with the table missing: ≤ 1.1× @grammyjs/storage-psql's time",
      `${spread(coldRatio)} — ${ms(median(cold(OURS)?.ms ?? []))} vs ${ms(median(cold(PSQL)?.ms ?? []))} ms, ${rounds(coldRatio)}`,
      coldRatio.median <= 1.1,
    ],
    [
      "cold start with the table missing: at most 1 connection opened",
      `${coldConnections} (most in any round)`,
      coldConnections <= 1,
    ],
    [
      "prune() of 100,000 expired rows: ≤ 2× one bare DELETE",
      `${spread(pruneRatio)} — ${ms(median(prune100k?.pruneMs ?? []))} vs ${ms(median(prune100k?.deleteMs ?? []))} ms, ${rounds(pruneRatio)}`,
      pruneRatio.median <= 2,
    ],
    [
      "PostgresStorage ≤ 6 KB min+gzip (as a bot imports it)",
      bundle ? kb(bundle.gzipped) : "–",
      (bundle?.gzipped ?? Infinity) <= 6 * 1024,
    ],
    ...(["read", "write"] as const).map((operation) =>
      atLeast(
        `c=32 throughput per operation, ${operation}: at least @telegraf/session/pg's`,
        perOperation(TELEGRAF, operation, 32),
        1.0,
      ),
    ),
    ["1 statement for a read-only update", String(ours?.readOnly), ours?.readOnly === 1],
    ["2 statements for a modifying update", String(ours?.modifying), ours?.modifying === 2],
    ["0 statements for an untouched lazySession", String(ours?.lazyUntouched), ours?.lazyUntouched === 0],
    [
      "cold start with the table present costs no extra statement",
      `${ours?.coldStartTableExists} (= a warm first update)`,
      ours?.coldStartTableExists === 2,
    ],
    [
      "readAllKeys in constant memory",
      `peak RSS +${largest?.peakMb.toFixed(1)} MB over ${largest?.rows.toLocaleString("en")} rows, +${smallest?.peakMb.toFixed(1)} MB over ${smallest?.rows.toLocaleString("en")}`,
      (largest?.peakMb ?? Infinity) < 64,
    ],
  ];

  const pgAdapters = results.adapters.filter((a) => a.via === "pg").map((a) => a.name);
  const neonAdapters = results.adapters.filter((a) => a.via !== "pg").map((a) => a.name);
  const latencyTable = (names: string[], bare: (name: string) => string) =>
    table(
      ["adapter", ...OPERATIONS.map((op) => `${op} p50 / p99`), "read, write p50 vs bare (median of rounds)"],
      names.map((name) => [
        name,
        ...OPERATIONS.map((op) => {
          const l = latency(name, op);
          return l ? `${ms(l.p50)} / ${ms(l.p99)}` : "n/a";
        }),
        (["read", "write"] as const)
          .map((op) =>
            times(ratioSpread(latency(name, op)?.roundP50s ?? [], latency(bare(name), op)?.roundP50s ?? []).median),
          )
          .join(", "),
      ]),
    );
  const neonBare = (name: string) => (name.includes("HTTP") ? "bare neon() HTTP" : "bare Neon Pool");

  const samples = results.latency.find((l) => l.adapter === OURS && l.operation === "read")?.samples ?? 0;
  const latencyRounds =
    results.latency.find((l) => l.adapter === OURS && l.operation === "read")?.roundP50s.length ?? 0;
  const updateRounds = update(OURS, "read-only", 32)?.rates.length ?? 0;
  const throughputRounds = throughputOf(OURS, "read", 32)?.rounds.length ?? 0;
  const svgName = out === "." ? "bench/latency.svg" : "latency.svg";
  const neon = results.neonLatency;
  const rtt = neon.roundTripMs;
  const neonP50 = (adapter: string, transport: string, kind: string) =>
    percentile(
      neon.latencies.find((l) => l.adapter === adapter && l.transport === transport && l.kind === kind)?.ms ?? [],
      50,
    );
  const neonSamples = neon.latencies[0]?.ms.length ?? 0;
  const statementsOf = (adapter: string, kind: string) => {
    const counts = [1, 32].map((c) => update(adapter, kind, c)?.statementsPerUpdate);
    return counts.every((n) => n !== undefined)
      ? Math.max(...(counts as number[])) - Math.min(...(counts as number[])) < 0.005
        ? (counts[0] as number).toFixed(2)
        : counts.map((n) => n?.toFixed(2)).join("/")
      : "–";
  };
  const markdown = `# Benchmarks

Measured by \`npm run bench${results.quick ? " -- --quick" : ""}\` on ${new Date().toISOString().slice(0, 10)}${measuredCommit()}, in ${results.seconds.toFixed(0)} s. Every
adapter ran in one process, on one database, in interleaved rounds, so that
machine noise hit every side alike. Latencies are in milliseconds (${samples} samples per
operation and adapter, in ${latencyRounds} rounds). "Bare" is a \`pool.query\` of the very statement this library
sends, unprepared, as a driver sends it by default: the reference for the targets;
"bare, prepared" sends the same statements prepared by name, as this library does:
the ceiling for any adapter on this pool.

Every ratio of two adapters is measured in one run: the two ran next to each other
in each round, the ratio is taken round by round, and the table gives its median
over the rounds with the lowest and highest round in brackets.

- Machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}
- Database: ${results.database}
- Versions: grammy-postgres-storage ${version("../")}, pg ${version("pg")}, @neondatabase/serverless ${version("@neondatabase/serverless")}, grammy ${version("grammy")}, @grammyjs/storage-psql ${version("@grammyjs/storage-psql")}, @telegraf/session ${version("@telegraf/session")} (kysely ${version("kysely")})
- Neon rows go through the real Neon driver and the local Neon endpoint (\`dev/neon-endpoint.ts\`) on loopback, so they show the driver's and the library's cost, not Neon's network.

## Targets

${table(
  ["target", "measured", "met"],
  targets.map(([target, measured, met]) => [target, measured, met ? "yes" : "**no**"]),
)}

### Reading the targets

${readingNotes(results, { perUpdate, perOperation, overBare, pruneRatio })}

## Per grammY update (pg)

Updates per second through a real grammY \`Bot\` (\`bot.handleUpdate\`, fixed
\`botInfo\`, handlers that do not call the Bot API), median of ${updateRounds} rounds in
which every adapter ran for the same time, next to the others; every adapter on one
\`pg.Pool\` of ${PER_UPDATE_POOL_SIZE}. At c=32, 32 chats send at once, each its updates one after the
other. Read-only reads \`ctx.session\` with \`session()\`; modifying changes it; the
untouched \`lazySession()\` never looks at it, so no adapter is called: those rows
measure grammY alone, and their spread is this machine's noise. Statements are
counted on the pool's connections while the updates ran; Node CPU is this
process's (grammY, the adapter and pg; PostgreSQL runs apart).

${table(
  [
    "update",
    "c",
    OURS,
    PSQL,
    TELEGRAF,
    "ours ÷ storage-psql",
    "ours ÷ telegraf",
    "statements per update (ours, psql, telegraf)",
    "Node CPU µs per update (ours, psql, telegraf)",
  ],
  [1, 32].flatMap((c) =>
    UPDATE_KINDS.map((kind) => [
      kind,
      String(c),
      ...[OURS, PSQL, TELEGRAF].map((adapter) => whole(median(update(adapter, kind, c)?.rates ?? []))),
      spread(perUpdate(PSQL, kind, c)),
      spread(perUpdate(TELEGRAF, kind, c)),
      [OURS, PSQL, TELEGRAF].map((adapter) => statementsOf(adapter, kind)).join(", "),
      [OURS, PSQL, TELEGRAF].map((adapter) => whole(median(update(adapter, kind, c)?.cpuMicros ?? []))).join(", "),
    ]),
  ),
)}

## Two isolates sharing sessions (pg)

Two isolates, each with a \`pg.Pool\` and a storage of its own, handle updates of the
same 4 chats at once through real grammY bots, each update incrementing its isolate's
own field; each isolate handles a chat's updates one after the other. Every update
changes the session, so every write-back of ours meets the other isolate's change
about half the time. Changes kept: the increments the rows hold at the end, of all
that were made (over ${updateRounds} rounds).

${table(
  ["adapter", "updates per second", "statements per update", "changes kept"],
  results.sharedSession.map((shared) => [
    shared.adapter,
    whole(median(shared.rates)),
    shared.statementsPerUpdate.toFixed(2),
    keptOf(shared.kept, shared.changes),
  ]),
)}

## What observability costs

CPU of this process per operation (µs, median over ${updateRounds} rounds), one storage
per variant on one pool, each round running every variant in turn: a read, then a
changed write-back of the same key, as a grammY update does. "No hook" is the
default; the hooks are no-ops, so the difference is the storage's own bookkeeping.

${table(
  ["variant", "read", "write-back", "read ÷ no hook", "write-back ÷ no hook"],
  [...new Set(results.hookCost.map((cost) => cost.variant))].map((variant) => {
    const of = (name: string, operation: string) =>
      median(results.hookCost.find((cost) => cost.variant === name && cost.operation === operation)?.cpuMicros ?? []);
    return [
      variant,
      whole(of(variant, "read")),
      whole(of(variant, "write-back")),
      times(of(variant, "read") / of("no hook", "read")),
      times(of(variant, "write-back") / of("no hook", "write-back")),
    ];
  }),
)}

## Latency per operation through \`pg\`

![p50 latency per operation and adapter](${svgName})

${latencyTable(pgAdapters, () => BARE)}

The peers have no \`has\` and no atomic \`update\`.

## Latency through Neon's driver

${latencyTable(neonAdapters, neonBare)}

## Per update through Neon's driver, ${rtt} ms per round trip

The real Neon driver through the local Neon endpoint, behind a proxy
(\`bench/latency-proxy.ts\`) that holds every chunk back ${rtt / 2} ms in each direction,
so that each round trip costs ${rtt} ms more, as a function's distance to its
database would. One bare \`SELECT 1\` through \`neon()\` takes ${ms(percentile(neon.bareHttpMs, 50))} ms (p50). Concurrency 1,
p50 of ${neonSamples} updates per row, every row sampled in turn in a random order. \`neon()\` over HTTP lives
as long as the isolate; "Neon Pool per update" creates a \`Pool\`, the storage
and the bot inside each update and ends the pool after it (not timed: on Workers
that is \`ctx.waitUntil(pool.end())\`). storage-psql gets \`neon(url, { fullResults: true })\`
(it reads \`{ rows }\`) and the same Pool; it can only be built by its \`create()\`,
which sends its two DDL statements each time. The proxy does not charge for TCP
and TLS handshakes, so a real new connection costs more than shown.

${table(
  [
    "transport",
    "update",
    `${OURS} p50`,
    `${PSQL} p50`,
    "ours ÷ storage-psql",
    `round trips (p50 ÷ ${rtt} ms), ours vs psql`,
  ],
  NEON_TRANSPORTS.flatMap((transport) =>
    NEON_KINDS.map((kind) => {
      const a = neonP50(OURS, transport, kind);
      const b = neonP50(PSQL, transport, kind);
      return [transport, kind, ms(a), ms(b), ratio(a, b), `${(a / rtt).toFixed(1)} vs ${(b / rtt).toFixed(1)}`];
    }),
  ),
)}

## Throughput (operations per second)

Mean of ${throughputRounds} rounds per adapter, one after the other in a rotating order; the pg adapters share one \`pg.Pool\` of 32.
Node CPU is this process's per operation; for the Neon rows it includes the local Neon endpoint, which runs in this process.

${table(
  [
    "adapter",
    ...[1, 8, 32].flatMap((c) => [`read c=${c}`, `write c=${c}`]),
    "Node CPU µs per op, c=32 read, write",
    "ours ÷ this, c=32 read, write (median of rounds)",
  ],
  results.adapters.map(({ name }) => [
    name,
    ...[1, 8, 32].flatMap((c) => [whole(rate(name, "read", c)), whole(rate(name, "write", c))]),
    (["read", "write"] as const).map((op) => whole(median(throughputOf(name, op, 32)?.cpuMicros ?? []))).join(", "),
    pgAdapters.includes(name)
      ? `${times(perOperation(name, "read", 32).median)}, ${times(perOperation(name, "write", 32).median)}`
      : "–",
  ]),
)}

## Value sizes (p50 ms, through \`pg\`)

${table(
  [
    "adapter",
    ...[100, 10_000, 1_000_000].flatMap((b) => [
      `write ${b.toLocaleString("en")} B`,
      `read ${b.toLocaleString("en")} B`,
    ]),
  ],
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
  [
    "adapter",
    "read-only",
    "modifying",
    "lazySession untouched",
    "cold start, table exists",
    "cold start, table missing",
  ],
  results.roundTrips.map((r) => [
    r.adapter,
    String(r.readOnly),
    String(r.modifying),
    String(r.lazyUntouched),
    String(r.coldStartTableExists),
    String(r.coldStartTableMissing),
  ]),
)}

## Cold start with the table missing

A fresh \`pg.Pool\` of 10 and a fresh adapter meet a table that does not exist,
then handle one modifying update: timed from before the pool is created to the
update handled (connecting, creating the table and the update's statements).
Connections are the pool's \`connect\` events. Median of ${cold(OURS)?.ms.length ?? 0} rounds, each with new table
names, after one round that warms the code up.

${table(
  ["adapter", "ms, median (min–max)", "vs storage-psql", "connections opened", "statements"],
  results.coldStarts.map((c) => [
    c.adapter,
    `${ms(median(c.ms))} (${ms(Math.min(...c.ms))}–${ms(Math.max(...c.ms))})`,
    spread(ratioSpread(c.ms, cold(PSQL)?.ms ?? [])),
    [...new Set(c.connections)].join(", "),
    [...new Set(c.statements)].join(", "),
  ]),
)}

## prune()

Two identical tables (\`createTableSql\`) of expired rows only, vacuumed and
analyzed, a \`CHECKPOINT\` before each timing: one emptied by \`storage.prune()\`
(256 blocks of the table per statement, read by a TID range scan),
the other by one bare \`DELETE FROM t WHERE expires_at <= now()\`, in alternating order.

${table(
  [
    "expired rows",
    "prune() ms, median",
    "bare DELETE ms, median",
    "prune() ÷ DELETE",
    "rows removed over all rounds (prune, DELETE)",
  ],
  results.prune.map((p) => [
    p.rows.toLocaleString("en"),
    ms(median(p.pruneMs)),
    ms(median(p.deleteMs)),
    spread(ratioSpread(p.pruneMs, p.deleteMs)),
    `${p.pruned.toLocaleString("en")}, ${p.deleted.toLocaleString("en")}`,
  ]),
)}

## readAllKeys

Keyset pagination, 1000 keys per page. Peak RSS is the process's resident memory
above where it started, on a second pass (the first, unmeasured, lets V8 size its
young generation for the allocation rate); "one query" is \`SELECT key\` of the whole
table at once, for comparison.

${table(
  ["rows", "keys listed", "seconds", "peak RSS, readAllKeys", "peak RSS, one query"],
  results.scans.map((s) => [
    s.rows.toLocaleString("en"),
    s.counted.toLocaleString("en"),
    s.seconds.toFixed(2),
    `+${s.peakMb.toFixed(1)} MB`,
    `+${s.naivePeakMb.toFixed(1)} MB`,
  ]),
)}

## Bundle size (esbuild, minified)

${table(
  ["bundle", "minified", "min + gzip"],
  results.bundles.map((b) => [b.name, kb(b.minified), kb(b.gzipped)]),
)}

What each module adds to \`PostgresStorage\`'s gzipped bundle: the whole, less the whole without it (each module
minified on its own, \`bench/bundle.ts\`). The parts add up to less than the bundle: words that modules share compress once.

${table(["module", "minified", "adds gzipped"], bundlePartRows(results.bundleParts))}

## Encoding a session (the default codec)

One walk that refuses what JSON would change and writes the JSON text as it goes (each property read once), beside the replacer it replaced and
plain JSON: median nanoseconds per encode of a ${results.codec.bytes.toLocaleString("en")}-byte session, interleaved, CPU only (\`bench/codec.ts\`).

${table(
  ["encoder", "ns per encode", "vs before"],
  [
    ["before: \`JSON.stringify(value, refuseLossy)\`", results.codec.previous.toFixed(0), "1.00×"],
    [
      "now: \`strictJson.stringify(value)\`",
      results.codec.current.toFixed(0),
      ratio(results.codec.current, results.codec.previous),
    ],
    [
      "floor: plain \`JSON.stringify(value)\`",
      results.codec.plain.toFixed(0),
      ratio(results.codec.plain, results.codec.previous),
    ],
  ],
)}

${compressionSection(results.compression, results.database)}`;
  writeFileSync(join(out, "BENCHMARKS.md"), markdown);
  writeFileSync(join(out, out === "." ? join("bench", "latency.svg") : "latency.svg"), chart(results, pgAdapters));
  return markdown;
}

/** " at commit abc1234" (with "+ changes" when the tree has uncommitted ones), or nothing outside a git checkout. */
function measuredCommit(): string {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: root, encoding: "utf8" }).trim();
    return ` at commit ${commit}${dirty === "" ? "" : " with changes to src/"}`;
  } catch {
    return "";
  }
}

/** How many of the changes made were kept, with the share. */
const keptOf = (kept: number, changes: number) =>
  `${kept} of ${changes} (${((100 * kept) / Math.max(1, changes)).toFixed(1)} %)`;

/** The section on compressedCodec, also printed alone by `node --import tsx bench/compression.ts`. */
export function compressionSection(compression: CompressionResults, database: string): string {
  return `## Conversation state, compressed (compressedCodec)

Real \`@grammyjs/conversations\` ${version("@grammyjs/conversations")} state, driven through a grammY \`Bot\` and a \`PostgresStorage\` on
${database} (\`bench/compression.ts\`, conversations in \`dev/example-conversation.ts\`): the example bot's /feedback
conversation, and a /list conversation that keeps every answer, whose state the plugin's replay log grows by each update.
Bytes: \`octet_length(value::text)\` of the row, default codec beside \`compressedCodec()\` (threshold
${compression.threshold.toLocaleString("en")} characters). CPU: median µs of Node ${process.version} CPU per update spent in the codec, one
decode (the read) and one encode (the write back) of that state.

${table(
  ["state", "updates", "bytes, default", "bytes, compressed", "smaller by", "CPU µs, default", "CPU µs, compressed"],
  compression.samples.map((s) => [
    s.label,
    s.steps.toLocaleString("en"),
    s.plainBytes.toLocaleString("en"),
    s.compressedBytes.toLocaleString("en"),
    times(s.plainBytes / s.compressedBytes),
    s.plainMicros.toFixed(0),
    s.compressedMicros.toFixed(0),
  ]),
)}
`;
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
    parts.push(
      `<text x="${(x0 + (groupWidth - 20) / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle" font-size="12">${operation}</text>`,
    );
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

/** The notes under the targets: what each ratio is made of, with this run's numbers. */
function readingNotes(
  results: Results,
  ratios: {
    perUpdate: (adapter: string, kind: string, concurrency: number) => RatioSpread;
    perOperation: (adapter: string, operation: string, concurrency: number) => RatioSpread;
    overBare: (operation: string) => RatioSpread;
    pruneRatio: RatioSpread;
  },
): string {
  const update = (adapter: string, kind: string) =>
    results.perUpdate.find((u) => u.adapter === adapter && u.kind === kind && u.concurrency === 32);
  const statements = (adapter: string, kind: string) => update(adapter, kind)?.statementsPerUpdate.toFixed(0) ?? "–";
  const updateCpu = (adapter: string, kind: string) => whole(median(update(adapter, kind)?.cpuMicros ?? []));
  const op = (adapter: string, operation: string) =>
    results.throughput.find((t) => t.adapter === adapter && t.operation === operation && t.concurrency === 32);
  const opCpu = (adapter: string, operation: string) => median(op(adapter, operation)?.cpuMicros ?? []);
  const vsPsql = (adapter: string, operation: string) =>
    times(ratioSpread(op(adapter, operation)?.rounds ?? [], op(PSQL, operation)?.rounds ?? []).median);
  const batches = results.prune
    .map((p) => `${ms(median(p.pruneMs))} ms at ${p.rows.toLocaleString("en")} rows`)
    .join(", ");
  const extra = (operation: string) => whole(opCpu(OURS, operation) - opCpu(BARE_PREPARED, operation));
  return [
    `- **Per update.** A read-only update costs this library ${statements(OURS, "read-only")} statement (grammY's write-back of the
  unchanged session is skipped) where storage-psql sends ${statements(PSQL, "read-only")}: at c=32 that is
  ${times(ratios.perUpdate(PSQL, "read-only", 32).median)} its throughput. A modifying update costs ${statements(OURS, "modifying")} statements on
  every adapter, so there the ratio (${times(ratios.perUpdate(PSQL, "modifying", 32).median)}) is one statement against another.
  This process's CPU per update at c=32: ${updateCpu(OURS, "read-only")} µs read-only and ${updateCpu(OURS, "modifying")} µs modifying for this
  library, ${updateCpu(PSQL, "read-only")} and ${updateCpu(PSQL, "modifying")} µs for storage-psql (grammY alone: ${updateCpu(OURS, "lazySession untouched")} µs).`,
    op(BARE_PREPARED, "read") === undefined
      ? `- **Per operation.** The database runs every connection in one session here, so no bare prepared statements ran for comparison.`
      : `- **Per operation, where the time goes.** At c=32 on ${cpus().length} cores this process and PostgreSQL
  share the CPU, so every microsecond spent here per operation is one the database
  does not get. This library's statements prepared and sent bare
  (\`${BARE_PREPARED}\`) reach ${vsPsql(BARE_PREPARED, "read")} storage-psql's read throughput and ${vsPsql(BARE_PREPARED, "write")} its
  write throughput at ${whole(opCpu(BARE_PREPARED, "read"))} and ${whole(opCpu(BARE_PREPARED, "write"))} µs of Node CPU per operation; this library,
  sending the same prepared statements, reaches ${vsPsql(OURS, "read")} and ${vsPsql(OURS, "write")} at ${whole(opCpu(OURS, "read"))} and ${whole(opCpu(OURS, "write"))} µs. The
  difference, ${extra("read")} µs per read and ${extra("write")} µs per write, is the library's own work per call
  (checking the key, the memory that skips unchanged write-backs, encoding and
  decoding, checking a connection out of the pool, the promises around it).
  Unprepared, the same statements (\`${BARE}\`) are slower than storage-psql's
  simpler ones: ${vsPsql(BARE, "read")} and ${vsPsql(BARE, "write")}. Writes go to keys no read of
  this process has open, so that every adapter's write is a plain write: a write of a key
  this library read moments ago is that read's write-back, merged onto the row (the
  per-update rows above).`,
    `- **Against the bare statement.** The bare row sends this library's very
  statements through \`pool.query\`, unprepared. Below 1.0× means preparing
  saves more than the library's own work costs: p50 read ${times(ratios.overBare("read").median)},
  write ${times(ratios.overBare("write").median)}.`,
    `- **prune()** deletes 256 blocks (2 MB) of the table per statement, reading them
  as a sequential scan does (a TID range scan), so a large purge is never one long
  transaction holding every expired row. What it adds to one bare \`DELETE\` is a
  statement and a commit per 2 MB, and counting the deleted rows (\`RETURNING\`
  into \`count(*)\`). Walking the key index instead, as before, cost a lookup per
  row: 2-3× longer. Measured: ${batches}, ${times(ratios.pruneRatio.median)} the bare DELETE at 100,000 rows.`,
    `- The bundle counts everything \`PostgresStorage\` does: lazy table creation,
  retries with their error classification, Standard Schema validation, the memory
  that skips unchanged writes, key and option checks, the default codec (about 5 KB of the
  minified size: the walk that refuses what JSON would change, and messages that
  name the path and the codec to use instead), and error messages that say what to
  do. The other codecs and \`sessionKey\` are tree-shaken away unless imported.`,
  ].join("\n");
}
