import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { adminPool, databaseUrl, uniqueTable, type Admin } from "./clients.js";

/** A pg Pool on the suite's database, fresh tables on demand, all dropped after the file. */
export interface Fixture {
  readonly pool: pg.Pool;
  readonly admin: Admin;
  /** A table name of this file's own, dropped afterwards. */
  table(label: string): string;
}

/** Sets up a {@link Fixture} for the calling file. */
export function useFixture(poolSize = 4): Fixture {
  const { admin, close } = adminPool();
  const tables: string[] = [];
  const fixture = {
    pool: undefined as unknown as pg.Pool,
    admin,
    table(label: string) {
      const name = uniqueTable(label);
      tables.push(name);
      return name;
    },
  };
  beforeAll(() => {
    fixture.pool = new pg.Pool({ connectionString: databaseUrl(), max: poolSize });
  });
  afterAll(async () => {
    for (const name of tables) await admin(`DROP TABLE IF EXISTS "${name}"`);
    await fixture.pool.end();
    await close();
  });
  return fixture;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Collects an async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}
