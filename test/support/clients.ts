import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import postgres from "postgres";
import { inject } from "vitest";
import type { PostgresClient, QueryParameter } from "../../src/index.ts";

/** A row as the tests read it. */
export type Row = Record<string, unknown>;

/** Runs SQL directly, beside the storage, to seed and inspect tables. */
export type Admin = (text: string, params?: unknown[]) => Promise<Row[]>;

/** A client ready for a storage, the same database reached directly, and how to let go of both. */
export interface OpenClient {
  readonly client: PostgresClient;
  readonly admin: Admin;
  close(): Promise<void>;
}

/** One way a user may hold a database client. Every kind runs the conformance suite. */
export interface ClientKind {
  readonly name: string;
  open(): Promise<OpenClient>;
}

/** The server the suite runs on: DATABASE_URL, or PGlite behind its socket server. */
export function databaseUrl(): string {
  return inject("databaseUrl");
}

/** A pg Pool on the suite's database, for seeding and inspecting. */
export function adminPool(): { admin: Admin; close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
  return {
    admin: async (text, params = []) => (await pool.query(text, params)).rows,
    close: () => pool.end(),
  };
}

/** A client kind on the suite's server: `connect` opens the client, an admin pool is opened beside it. */
export function onServer(
  name: string,
  connect: (url: string) => Promise<{ client: PostgresClient; close(): Promise<void> }>,
): ClientKind {
  return {
    name,
    async open() {
      const { client, close } = await connect(databaseUrl());
      const pool = adminPool();
      return {
        client,
        admin: pool.admin,
        async close() {
          await close();
          await pool.close();
        },
      };
    },
  };
}

/** Every client this library accepts without Neon (Neon and @vercel/postgres have their own suite). */
export const clientKinds: readonly ClientKind[] = [
  onServer("pg Pool", async (url) => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    return { client: pool, close: () => pool.end() };
  }),
  onServer("pg Client", async (url) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return { client, close: () => client.end() };
  }),
  onServer("postgres.js", async (url) => {
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    return { client: sql, close: () => sql.end() };
  }),
  onServer("query(text, params) returning rows", async (url) => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    const client = { query: async (text: string, params: QueryParameter[]) => (await pool.query(text, params)).rows };
    return { client, close: () => pool.end() };
  }),
  {
    name: "PGlite (in process)",
    async open() {
      const db = await PGlite.create();
      return {
        client: db,
        admin: async (text, params = []) => (await db.query<Row>(text, params)).rows,
        close: () => db.close(),
      };
    },
  },
];

/** `count` connected pg Clients on the suite's database: separate connections, as separate processes have. */
export async function connectClients(count: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = new pg.Client({ connectionString: databaseUrl() });
      await client.connect();
      return client;
    }),
  );
}

let tableCount = 0;

/**
 * What every table and schema the tests create is named with, so that running
 * them against a database of your own (DATABASE_URL) touches nothing else.
 */
export const TEST_NAME_PREFIX = "gps_test_";

/**
 * A table (or schema) name no other suite or run uses, starting with
 * {@link TEST_NAME_PREFIX}.
 *
 * @throws Error when the name would be longer than PostgreSQL keeps (63 bytes)
 */
export function uniqueTable(label: string): string {
  tableCount += 1;
  const name = `${TEST_NAME_PREFIX}${label}_${process.pid}_${tableCount}_${Math.random().toString(36).slice(2, 8)}`;
  if (name.length > 63)
    throw new Error(`test table name ${name} is longer than 63 characters; shorten the label ${JSON.stringify(label)}`);
  return name;
}

/** Whether a table exists, without creating anything. */
export async function tableExists(admin: Admin, table: string): Promise<boolean> {
  const [row] = await admin("SELECT to_regclass($1) IS NOT NULL AS present", [`"${table.split(".").join('"."')}"`]);
  return row?.present === true;
}
