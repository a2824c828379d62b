import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { adminPool, databaseUrl, uniqueTable, type Admin } from "./clients.ts";

/** A pg Pool on the suite's database, fresh tables on demand, all dropped after the file. */
export interface Fixture {
  readonly pool: pg.Pool;
  readonly admin: Admin;
  /** A table name of this file's own, dropped afterwards. */
  table(label: string): string;
}

/** Tables and schemas of the calling file's own, on the suite's database. */
export interface Tables {
  readonly admin: Admin;
  /** A fresh table name, the table dropped after the file. */
  table(label: string): string;
  /** A fresh schema name, the schema dropped (with what it holds) after the file. */
  schema(label: string): string;
}

/** Sets up {@link Tables} for the calling file. */
export function useTables(): Tables {
  const { admin, close } = adminPool();
  const drops: string[] = [];
  const named = (label: string, drop: (name: string) => string) => {
    const name = uniqueTable(label);
    drops.push(drop(name));
    return name;
  };
  afterAll(async () => {
    for (const drop of drops) await admin(drop);
    await close();
  });
  return {
    admin,
    table: (label) => named(label, (name) => `DROP TABLE IF EXISTS "${name}"`),
    schema: (label) => named(label, (name) => `DROP SCHEMA IF EXISTS "${name}" CASCADE`),
  };
}

/** Sets up a {@link Fixture} for the calling file. */
export function useFixture(poolSize = 4): Fixture {
  const { admin, table } = useTables();
  const fixture = { pool: undefined as unknown as pg.Pool, admin, table };
  beforeAll(() => {
    fixture.pool = new pg.Pool({ connectionString: databaseUrl(), max: poolSize });
  });
  afterAll(async () => {
    await fixture.pool.end();
  });
  return fixture;
}

/**
 * Pools of their own, as separate isolates or processes have (two connections each), ended after the calling file:
 * call the answer for each.
 */
export function useIsolates(): () => pg.Pool {
  const pools: pg.Pool[] = [];
  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
  });
  return () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    pools.push(pool);
    return pool;
  };
}

/** The row's value as the database holds its text, expired or not; `undefined` without a row. */
export async function storedText(admin: Admin, table: string, key: string): Promise<string | undefined> {
  return (await admin(`SELECT value::text AS value FROM "${table}" WHERE key = $1`, [key]))[0]?.value as
    | string
    | undefined;
}

/**
 * Moves every expiry in `table` `ms` milliseconds into the past. The storage
 * judges expiry by the database's `now()`, so to it this is as if `ms` had
 * passed, without waiting for them.
 */
export async function rewindExpiries(admin: Admin, table: string, ms: number): Promise<void> {
  await admin(`UPDATE "${table}" SET expires_at = expires_at - $1::float8 * interval '1 millisecond'`, [ms]);
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Collects an async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}
