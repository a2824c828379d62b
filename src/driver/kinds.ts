/**
 * The clients the storage knows, in the order they are tried: a new kind of
 * client is a module of its own (see `ClientKind`) and a line here.
 */
import { StorageOptionError } from "../errors.ts";
import { bunSql } from "./bun-sql.ts";
import type { ClientKind, Driver } from "./clients.ts";
import { neonHttp } from "./neon-http.ts";
import { pgClient, pgPool } from "./pg.ts";
import { pglite } from "./pglite.ts";
import { postgresJs } from "./postgres-js.ts";
import { queryClient } from "./query-client.ts";

/**
 * Every kind of client, most particular first. Those with `query` come before those with `unsafe`: `neon()`'s
 * function has an `unsafe` of its own, for raw SQL in templates.
 */
export const CLIENT_KINDS: readonly ClientKind[] = [
  pgPool,
  pgClient,
  neonHttp,
  pglite,
  queryClient,
  bunSql,
  postgresJs,
];

/**
 * The driver of whatever client the user passed.
 *
 * @throws StorageOptionError when the object is no client we know how to call
 */
export function toDriver(client: unknown): Driver {
  if ((typeof client === "object" || typeof client === "function") && client !== null) {
    for (const kind of CLIENT_KINDS) {
      const driver = kind.driverFor?.(client);
      if (driver !== undefined) return driver;
    }
  }
  throw new StorageOptionError(
    "client",
    `client must be a pg or Neon Pool or Client, neon(), a postgres.js sql, PGlite, Bun's SQL, ` +
      `or any object with query(text, params); got ${client === null ? "null" : typeof client}`,
  );
}
