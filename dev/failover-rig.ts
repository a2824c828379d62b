// A replicated cluster behind a movable fault proxy, isolates on it, and failovers: the failover test and the soak.
import pg from "pg";
import { createTableSql, PostgresStorage, type RetryOptions } from "../src/index.ts";
import { auditSql, type Isolate, type Value } from "./failover-load.ts";
import { startFaultProxy, type FaultProxy } from "./fault-proxy.ts";
import { startCluster, stopNode, type PgCluster, type PgNode } from "./pg-cluster.ts";

/** Everything a failover run needs, and how to take it all down. */
export interface Rig {
  readonly cluster: PgCluster;
  readonly proxy: FaultProxy;
  readonly isolates: readonly Isolate[];
  /** Storages with `millisecondsToLive` on the same pools, on the table `${table}_ttl`. */
  readonly ttlStorages: readonly PostgresStorage<Value>[];
  readonly table: string;
  /** A demoted primary that the proxy sent (or still has) connections to, while it serves stale reads. */
  demoted: PgNode | undefined;
  /** Whether a read now may reach the demoted primary. */
  staleRisk(): boolean;
  /** Records an operation's outcome, for measuring recovery. */
  onResult(result: { isolate: number; ok: boolean; writes: boolean; at: number }): void;
  /**
   * Fails over: stops the primary at once (`pg_ctl stop -m immediate`),
   * promotes the standby, and moves the proxy to it, after `readOnlyMs`
   * during which the old primary, restarted as a standby, takes the proxy's
   * new connections (0: the proxy moves as soon as the promotion is done).
   * Resolves once every isolate has written again, with the times.
   */
  failover(options?: { readOnlyMs?: number }): Promise<FailoverTimes>;
  /** A new synchronous standby for the next failover (pg_basebackup from the primary). */
  addStandby(): Promise<void>;
  /** A pool on the primary, bypassing the proxy. */
  direct(): pg.Pool;
  /** Ends the pools, the proxy and the cluster, whatever state they are in. */
  destroy(): Promise<void>;
}

/** How long a failover took, in ms. */
export interface FailoverTimes {
  /** When the primary was stopped and when the proxy moved (performance.now()). */
  readonly stoppedAt: number;
  readonly movedAt: number;
  /** From the stop of the primary to the proxy pointing at the new one. */
  readonly switchMs: number;
  /** For each isolate, from the proxy's move to its first write that resolved. */
  readonly recoveredAfterMoveMs: readonly number[];
  /** For each isolate, from the stop of the primary to its first write that resolved. */
  readonly outageMs: readonly number[];
}

/** Options of {@link startRig}. */
export interface RigOptions {
  readonly isolates: number;
  readonly poolSize: number;
  readonly retry?: RetryOptions | false;
  readonly ttlMs?: number;
  readonly random?: () => number;
}

/** Starts a cluster (primary and synchronous standby), a proxy to the primary, and isolates through the proxy. */
export async function startRig(options: RigOptions): Promise<Rig> {
  const cluster = await startCluster();
  let proxy: FaultProxy | undefined;
  const pools: pg.Pool[] = [];
  const directs: pg.Pool[] = [];
  const destroy = async () => {
    await Promise.all([...pools, ...directs].map((pool) => pool.end().catch(() => {})));
    await proxy?.stop();
    await cluster.destroy();
  };
  try {
    proxy = await startFaultProxy(cluster.primary.url, options.random);
    const table = "gps_failover";
    const setup = new pg.Client({ connectionString: cluster.primary.url });
    await setup.connect();
    try {
      await setup.query(createTableSql(table));
      await setup.query(createTableSql(`${table}_ttl`));
      await setup.query(auditSql(table));
    } finally {
      await setup.end();
    }
    const isolates: Isolate[] = [];
    const ttlStorages: PostgresStorage<Value>[] = [];
    for (let i = 0; i < options.isolates; i += 1) {
      // idleTimeoutMillis short, as a serverless instance's pool: connections to a demoted primary age out.
      const pool = new pg.Pool({
        connectionString: proxy.url,
        max: options.poolSize,
        application_name: `gps_isolate_${i}`,
        idleTimeoutMillis: 2000,
        connectionTimeoutMillis: 5000,
      });
      pool.on("error", () => {}); // idle clients cut by a fault or a failover: the pool replaces them
      pools.push(pool);
      isolates.push({
        name: `isolate${i}`,
        pool,
        storage: new PostgresStorage<Value>({ client: pool, tableName: table, retry: options.retry }),
        reader: new PostgresStorage<Value>({ client: pool, tableName: table, retry: options.retry }),
      });
      if (options.ttlMs !== undefined) {
        ttlStorages.push(
          new PostgresStorage<Value>({
            client: pool,
            tableName: `${table}_ttl`,
            retry: options.retry,
            millisecondsToLive: options.ttlMs,
          }),
        );
      }
    }
    const theProxy = proxy;
    let mark:
      | { at: number; movedAt: number; stoppedAt: number; recovered: (number | undefined)[]; done: () => void }
      | undefined;
    const rig: Rig = {
      cluster,
      proxy,
      isolates,
      ttlStorages,
      table,
      demoted: undefined,
      staleRisk() {
        const demoted = rig.demoted;
        return demoted !== undefined && (theProxy.targetPort === demoted.port || theProxy.openTo(demoted.port) > 0);
      },
      onResult({ isolate, ok, writes, at }) {
        if (mark === undefined || !ok || !writes || at < mark.movedAt || mark.recovered[isolate] !== undefined) return;
        mark.recovered[isolate] = at;
        if (mark.recovered.every((t) => t !== undefined)) mark.done();
      },
      async failover({ readOnlyMs = 0 } = {}) {
        const stoppedAt = performance.now();
        if (readOnlyMs > 0) rig.demoted = cluster.primary;
        const { old, promoted } = await cluster.failover();
        if (readOnlyMs > 0) {
          await cluster.restartAsStandby(old);
          await sleep(readOnlyMs);
        }
        let done = () => {};
        const recovered = new Promise<void>((resolve) => {
          done = resolve;
        });
        const movedAt = performance.now();
        mark = { at: movedAt, movedAt, stoppedAt, recovered: isolates.map(() => undefined), done };
        theProxy.moveTo(promoted.url);
        const timeout = sleep(20_000);
        await Promise.race([recovered, timeout]);
        const times = mark.recovered;
        mark = undefined;
        return {
          stoppedAt,
          movedAt,
          switchMs: movedAt - stoppedAt,
          recoveredAfterMoveMs: times.map((t) => (t === undefined ? Number.NaN : t - movedAt)),
          outageMs: times.map((t) => (t === undefined ? Number.NaN : t - stoppedAt)),
        };
      },
      async addStandby() {
        // A demoted primary is done with once a new standby replaces it.
        if (rig.demoted !== undefined) {
          await stopNode(rig.demoted, "immediate");
          rig.demoted = undefined;
        }
        await cluster.addStandby();
      },
      direct() {
        const pool = new pg.Pool({ connectionString: cluster.primary.url, max: 2 });
        pool.on("error", () => {});
        directs.push(pool);
        return pool;
      },
      destroy,
    };
    return rig;
  } catch (error) {
    await destroy();
    throw error;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());
