/**
 * Bun's own SQL types fit the storage's client types as they are: run.sh
 * checks this file against bun-types (of the Bun it runs) with
 * tsconfig.bun-types.json beside it. Under the repo's tsconfig, which has no
 * bun-types, the import below is `any` and the file checks nothing.
 */
// @ts-ignore: "bun" resolves only where bun-types is installed (run.sh's check)
import { SQL, sql } from "bun";
import { PostgresStorage, type PostgresClient, type UnsafeQueryClient } from "../../../src/index.ts";

export const fromUrl: PostgresClient = new SQL("postgres://postgres@127.0.0.1:5432/test");
export const unprepared: UnsafeQueryClient = new SQL({
  url: "postgres://postgres@127.0.0.1:5432/test",
  prepare: false,
});
export const storages = async () => [
  new PostgresStorage({ client: sql }),
  new PostgresStorage({ client: await sql.reserve() }),
  new PostgresStorage<{ count: number }>({
    client: new SQL({ url: "postgres://postgres@127.0.0.1:5432/test", max: 4 }),
  }),
];
