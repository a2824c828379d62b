import { Client as NeonClientClass, Pool as NeonPool, neon } from "@neondatabase/serverless";
import { PsqlAdapter } from "@grammyjs/storage-psql";
import { Postgres as TelegrafPostgres } from "@telegraf/session/pg";
import pg from "pg";
import type { Statement } from "../src/driver/clients.js";
import { PostgresStorage, createTableSql, type PostgresClient } from "../src/index.js";
import { statementsFor } from "../src/statements.js";

/** The bare statements through pg, unprepared (the targets' reference) and prepared. */
export const BARE = "bare pool.query";
export const BARE_PREPARED = "bare pool.query, prepared";

/** A session value as the benchmark writes it. */
export type Value = Record<string, unknown>;

/** One way to store sessions, measured side by side with the others. */
export interface Adapter {
  readonly name: string;
  /** Which transport it goes through, so ratios compare like with like. */
  readonly via: "pg" | "neon-http" | "neon-pool";
  read(key: string): Promise<unknown>;
  write(key: string, value: Value): Promise<void>;
  delete(key: string): Promise<void>;
  has?(key: string): Promise<boolean>;
  update?(key: string, patch: Value): Promise<unknown>;
  /** Creates what the adapter cannot create by itself. */
  prepare?(): Promise<void>;
}

/** Runs one parameterized statement; the bare driver, for the limit. */
type Query = (statement: Statement, params: unknown[]) => Promise<{ rows: unknown[] } | unknown[]>;

/**
 * The statements this library sends, sent bare through the driver: what any
 * adapter costs at the least, short of preparing them.
 */
function bare(name: string, via: Adapter["via"], table: string, query: Query): Adapter {
  const sql = statementsFor(`"${table}"`);
  return {
    name,
    via,
    read: async (key) => query(sql.read, [key]),
    write: async (key, value) => void (await query(sql.write, [key, JSON.stringify(value)])),
    delete: async (key) => void (await query(sql.delete, [key])),
    has: async (key) => {
      const result = await query(sql.has, [key]);
      return (Array.isArray(result) ? result : result.rows).length > 0;
    },
    update: async (key, patch) => query(sql.merge, [key, JSON.stringify(patch)]),
    prepare: async () => void (await query({ text: createTableSql(table), name: "" }, [])),
  };
}

function ours(name: string, via: Adapter["via"], client: PostgresClient, tableName: string): Adapter {
  const storage = new PostgresStorage<Value>({ client, tableName });
  return {
    name,
    via,
    read: (key) => storage.read(key),
    write: (key, value) => storage.write(key, value),
    delete: (key) => storage.delete(key),
    has: (key) => storage.has(key),
    update: (key, patch) => storage.update(key, patch),
  };
}

/**
 * The pg adapters: bare queries, this library, and the two peers, all on one
 * Pool. The bare statements go prepared too unless the database runs every
 * connection in one session (PGlite), where names prepared on two connections collide.
 */
export async function pgAdapters(
  pool: pg.Pool,
  tables: (label: string) => string,
  options: { prepared: boolean },
): Promise<Adapter[]> {
  // storage-psql types its client as pg's Client but only calls query(), which a Pool has.
  const psql = await PsqlAdapter.create({ client: pool as unknown as pg.Client, tableName: tables("psql") });
  const telegraf = TelegrafPostgres<Value>({ pool, table: tables("telegraf") });
  return [
    // Unprepared, as a driver sends a statement by default: the reference for the targets.
    bare(BARE, "pg", tables("bare"), ({ text }, params) => pool.query(text, params)),
    // The same statements prepared by name, as this library sends them: the ceiling for any adapter on this pool.
    ...(options.prepared
      ? [
          bare(BARE_PREPARED, "pg", tables("bare_prepared"), ({ text, name }, params) =>
            name === "" ? pool.query(text, params) : pool.query({ text, name, values: params }),
          ),
        ]
      : []),
    ours("grammy-postgres-storage", "pg", pool, tables("ours")),
    {
      name: "@grammyjs/storage-psql",
      via: "pg",
      read: (key) => psql.read(key),
      write: (key, value) => psql.write(key, value),
      delete: (key) => psql.delete(key),
    },
    {
      name: "@telegraf/session/pg",
      via: "pg",
      read: async (key) => telegraf.get(key),
      write: (key, value) => Promise.resolve(telegraf.set(key, value)).then(() => undefined),
      delete: (key) => Promise.resolve(telegraf.delete(key)).then(() => undefined),
    },
  ];
}

/** This library through Neon's driver (HTTP and Pool), beside the same driver bare. */
export function neonAdapters(url: string, neonPool: NeonPool, tables: (label: string) => string): Adapter[] {
  const http = neon(url);
  return [
    bare("bare neon() HTTP", "neon-http", tables("neon_bare_http"), ({ text }, params) => http.query(text, params)),
    ours("grammy-postgres-storage, neon() HTTP", "neon-http", http, tables("neon_ours_http")),
    bare("bare Neon Pool", "neon-pool", tables("neon_bare_pool"), ({ text }, params) => neonPool.query(text, params)),
    ours("grammy-postgres-storage, Neon Pool", "neon-pool", neonPool, tables("neon_ours_pool")),
  ];
}

export { NeonClientClass, NeonPool };
