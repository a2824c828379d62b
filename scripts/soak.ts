// npm run soak -- --minutes N: several isolates under random faults and failovers, checked against a model.
//
// A primary and a synchronous standby (dev/pg-cluster.ts, this machine's PostgreSQL binaries, loopback only), the
// isolates' pools behind a fault proxy (dev/fault-proxy.ts) that moves on each failover, and the load of
// dev/failover-load.ts. Faults: connections cut at random through the proxy (before, in the middle of, or after a
// query), every connection cut at once, connections refused for a moment, pg_terminate_backend of the isolates'
// connections, and a failover every few minutes (every other one with the old primary taking new connections for
// 2 s as a read-only standby first). Exits 1 on any violation. Prints operations, faults, failovers, violations.
import { parseArgs } from "node:util";
import { startLoad, type Value } from "../dev/failover-load.ts";
import { seededRandom } from "../dev/fault-proxy.ts";
import { startRig, type FailoverTimes, type Rig } from "../dev/failover-rig.ts";
import { clusterAvailable, onNode } from "../dev/pg-cluster.ts";
import { PostgresStorage } from "../src/index.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    "failover-every": { type: "string", default: "" }, // minutes; default: 4 per run, at most every 3 minutes
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    isolates: { type: "string", default: "3" },
  },
});
const minutes = Number(values.minutes);
const seed = Number(values.seed);
const failoverEveryMs =
  values["failover-every"] !== ""
    ? Number(values["failover-every"]) * 60_000
    : Math.min(3 * 60_000, (minutes * 60_000) / 4);
if (!(minutes > 0) || !(failoverEveryMs > 0))
  throw new Error("usage: npm run soak -- --minutes N [--failover-every M] [--seed S]");
if (!clusterAvailable())
  throw new Error("the soak needs PostgreSQL's server binaries (PG_BIN, /usr/lib/postgresql/15/bin)");

const random = seededRandom(seed);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const faults = { cutAll: 0, refused: 0, terminated: 0, terminateCalls: 0 };
const failovers: { kind: string; times: FailoverTimes }[] = [];
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 60_000).toFixed(1)} min`;

let rig: Rig | undefined;
let stopping = false;
const stopSignals = () => {
  stopping = true;
};
process.on("SIGINT", stopSignals);
process.on("SIGTERM", stopSignals);

let exitCode = 0;
try {
  console.log(`soak: ${minutes} min, seed ${seed}, a failover every ${(failoverEveryMs / 60_000).toFixed(1)} min`);
  rig = await startRig({ isolates: Number(values.isolates), poolSize: 4, ttlMs: 1500, random });
  const theRig = rig;
  const load = startLoad({
    isolates: rig.isolates,
    lanes: 8,
    keysPerLane: 4,
    random,
    staleRisk: () => theRig.staleRisk(),
    onResult: (result) => theRig.onResult(result),
    ttl: { storages: rig.ttlStorages, ms: 1500, lanes: 2 },
    pauseMs: 1,
  });
  Object.assign(rig.proxy.settings, {
    probability: 0.003,
    faults: ["drop-before-query", "drop-mid-query", "drop-mid-response"],
  });
  const injected = () =>
    Object.values(theRig.proxy.injected).reduce((a, b) => a + b, 0) +
    faults.cutAll +
    faults.refused +
    faults.terminated;
  const status = () =>
    `${elapsed()}: ${load.report.operations} operations (${load.report.failed} failed, ${load.report.failedInDoubt} in doubt), ` +
    `${injected()} faults, ${failovers.length} failovers, ${load.report.violations.length} violations`;

  const until = started + minutes * 60_000;
  let nextFailover = started + failoverEveryMs / 2;
  let nextStatus = started + 30_000;
  while (!stopping && performance.now() < until) {
    await sleep(1000 + random() * 2000);
    if (stopping) break;
    const now = performance.now();
    if (now >= nextFailover && until - now > 20_000) {
      const readOnlyMs = failovers.length % 2 === 1 ? 2000 : 0;
      const kind = readOnlyMs > 0 ? "old primary read-only for 2 s" : "promoted, proxy moved";
      const times = await rig.failover({ readOnlyMs });
      failovers.push({ kind, times });
      console.log(
        `${elapsed()}: failover ${failovers.length} (${kind}): switched in ${(times.switchMs / 1000).toFixed(2)} s, ` +
          `recovered ${times.recoveredAfterMoveMs.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s after the move`,
      );
      await sleep(2000);
      await rig.addStandby();
      nextFailover = performance.now() + failoverEveryMs;
      continue;
    }
    const roll = random();
    if (roll < 0.4) {
      rig.proxy.dropAll();
      faults.cutAll += 1;
    } else if (roll < 0.7) {
      await rig.proxy.refuse(true);
      await sleep(50 + random() * 300);
      await rig.proxy.refuse(false);
      faults.refused += 1;
    } else {
      const rows = await onNode<{ done: boolean }>(
        rig.cluster.primary,
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name LIKE 'gps_isolate_%'",
      ).catch(() => []);
      faults.terminateCalls += 1;
      faults.terminated += rows.length;
    }
    if (now >= nextStatus) {
      console.log(status());
      nextStatus = now + 30_000;
    }
  }
  rig.proxy.settings.probability = 0;
  await load.stop();
  const direct = rig.direct();
  await load.check(new PostgresStorage<Value>({ client: direct, tableName: rig.table }), direct, rig.table);
  const report = load.report;
  const recovered = failovers.flatMap((f) => f.times.recoveredAfterMoveMs);
  const switched = failovers.map((f) => f.times.switchMs);
  console.log("");
  console.log(`soak done after ${elapsed()} (seed ${seed})`);
  console.log(
    `operations: ${report.operations} (${report.succeeded} succeeded, ${report.failed} failed, ${report.failedInDoubt} of them in doubt)`,
  );
  console.log(
    `faults injected: ${injected()} (proxy: ${JSON.stringify(rig.proxy.injected)}; every connection cut: ${faults.cutAll}; ` +
      `refused: ${faults.refused}; backends terminated: ${faults.terminated} in ${faults.terminateCalls} calls)`,
  );
  console.log(
    `failovers: ${failovers.length}; switch ${fmt(switched)}; recovered after the move ${fmt(recovered)} (per isolate)`,
  );
  console.log(
    `ttl: ${report.expiredReads} reads found a row expired; ${report.prunes} prune() calls removed ${report.pruned} rows`,
  );
  console.log(`stale reads answered by a demoted primary: ${report.staleReads}`);
  console.log(`violations: ${report.violations.length}`);
  for (const violation of report.violations) console.log(`  ${violation}`);
  if (report.violations.length > 0) exitCode = 1;
} catch (error) {
  console.error(error);
  exitCode = 2;
} finally {
  await rig?.destroy();
}
process.exit(exitCode);

function fmt(ms: number[]): string {
  if (ms.length === 0) return "-";
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) =>
    ((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number) / 1000).toFixed(2);
  return `median ${at(0.5)} s, max ${at(1)} s`;
}
