/**
 * What observability costs: CPU per read and per write-back of one storage
 * with no hook (the default), with a no-op `onEvent`, and with a no-op
 * OpenTelemetry-shaped `tracer`, side by side on one pool, round by round.
 */
import type pg from "pg";
import { PostgresStorage, type PostgresStorageOptions, type TracerLike } from "../src/index.js";
import { rotate } from "./measure.js";

/** One variant's CPU per operation, in each round. */
export interface HookCost {
  readonly variant: string;
  readonly operation: "read" | "write-back";
  /** Microseconds of this process's CPU per operation, in each round. */
  readonly cpuMicros: number[];
}

const noopSpan = { setAttribute: () => undefined, setStatus: () => undefined, end: () => {} };
const noopTracer: TracerLike = { startSpan: () => noopSpan };
const VARIANTS: [string, Partial<PostgresStorageOptions<{ n: number }>>][] = [
  ["no hook", {}],
  ["onEvent (no-op)", { onEvent: () => {} }],
  ["tracer (no-op)", { tracer: noopTracer }],
];

/** Runs `operations` updates (read and write-back) per variant and round. */
export async function measureHookCost(
  pool: pg.Pool,
  tables: (label: string) => string,
  settings: { rounds: number; operations: number },
): Promise<HookCost[]> {
  const variants = VARIANTS.map(([variant, options], i) => ({
    variant,
    storage: new PostgresStorage<{ n: number }>({ client: pool, tableName: tables(`hook_${i}`), ...options }),
  }));
  for (const { storage } of variants) {
    await storage.write("k", { n: 0 });
    await run(storage, 50);
  }
  const costs = new Map<string, number[]>();
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const { variant, storage } of rotate(variants, round)) {
      const { read, writeBack } = await run(storage, settings.operations);
      costs.set(`${variant}|read`, [...(costs.get(`${variant}|read`) ?? []), read]);
      costs.set(`${variant}|write-back`, [...(costs.get(`${variant}|write-back`) ?? []), writeBack]);
    }
  }
  return [...costs].map(([id, cpuMicros]) => {
    const [variant = "", operation = "read"] = id.split("|");
    return { variant, operation: operation as HookCost["operation"], cpuMicros };
  });
}

/** Updates of one key as grammY runs them (a read, then a changed write-back): µs of CPU of each. */
async function run(storage: PostgresStorage<{ n: number }>, operations: number) {
  let read = 0;
  let writeBack = 0;
  for (let i = 0; i < operations; i += 1) {
    const start = process.cpuUsage();
    const session = (await storage.read("k")) ?? { n: 0 };
    const between = process.cpuUsage(start);
    session.n += 1;
    await storage.write("k", session);
    const end = process.cpuUsage(start);
    read += between.user + between.system;
    writeBack += end.user + end.system - (between.user + between.system);
  }
  return { read: read / operations, writeBack: writeBack / operations };
}
