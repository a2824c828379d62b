import pg from "pg";
import { describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, createTableSql, type OperationEvent } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { countingClient, countingPool } from "./support/counting-pool.js";
import { rewindExpiries, useTables } from "./support/fixture.js";
import { wrappedPool, type PooledQuery } from "./support/wrapped-pool.js";

// A compare-and-set answers whether it changed the row. pg's own Pools and Clients count the rows a statement changed
// (rowCount, from the command's tag), so there it goes alone; through any other client, or a wrapper whose results
// may not say, it goes inside `WITH changed AS (… RETURNING 1) SELECT FROM changed`, which returns a row per row
// changed. Each client below meets the same compare-and-sets, each way they can end, with the same outcomes.

type Session = { n?: number; m?: number };

interface Recorded {
  readonly client: pg.Pool | pg.Client | ReturnType<typeof wrappedPool>;
  readonly statements: string[];
  close(): Promise<void>;
}

const recordingWrapper =
  (statements: string[]) =>
  (query: PooledQuery) =>
  (...args: unknown[]) => {
    const [first] = args as [string | { text: string }];
    statements.push(typeof first === "string" ? first : first.text);
    return query(...args);
  };

const clients: { name: string; alone: boolean; open(): Promise<Recorded> }[] = [
  {
    name: "a pg Pool",
    alone: true,
    async open() {
      const { pool, statements } = countingPool();
      return { client: pool, statements, close: () => pool.end() };
    },
  },
  {
    name: "a wrapper of a pg Pool",
    alone: false,
    async open() {
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
      const statements: string[] = [];
      return { client: wrappedPool(pool, recordingWrapper(statements)), statements, close: () => pool.end() };
    },
  },
  {
    name: "a pg Client",
    alone: true,
    async open() {
      const { client, statements } = countingClient();
      await client.connect();
      return { client, statements, close: () => client.end() };
    },
  },
  {
    name: "a pg Client whose query() is a property of its own",
    alone: false,
    async open() {
      const client = new pg.Client({ connectionString: databaseUrl() });
      await client.connect();
      const statements: string[] = [];
      client.query = recordingWrapper(statements)(client.query.bind(client) as PooledQuery) as pg.Client["query"];
      return { client, statements, close: () => client.end() };
    },
  },
];

describe("compare-and-sets", () => {
  const tables = useTables();

  for (const { name, alone, open } of clients) {
    it(`through ${name}, go ${alone ? "alone, read by their rowCount" : "inside a WITH that returns their rows"}`, async () => {
      const { client, statements, close } = await open();
      try {
        const tableName = tables.table("counted");
        await tables.admin(createTableSql(tableName));
        const events: OperationEvent[] = [];
        const storage = new PostgresStorage<Session>({
          client,
          tableName,
          millisecondsToLive: 60_000,
          onEvent: (event) => void (event.kind === "operation" && events.push(event)),
        });
        const stored = async (key: string) =>
          (await tables.admin(`SELECT value::text AS v FROM "${tableName}" WHERE key = $1`, [key]))[0]?.v;
        const writeBack = async (
          key: string,
          change: (session: Session) => void,
          meanwhile?: () => Promise<unknown>,
        ) => {
          const session = (await storage.read(key)) ?? {};
          change(session);
          await meanwhile?.();
          await storage.write(key, session);
        };
        const other = (sql: string) => () => tables.admin(sql);

        // A session new to the row: set if no row is there (then), else merged onto the one another writer made.
        await writeBack("a", (s) => void (s.n = 1));
        await writeBack(
          "b",
          (s) => void (s.n = 1),
          other(`INSERT INTO "${tableName}" (key, value) VALUES ('b', '{"m":1}')`),
        );
        // A session changed: set if the row holds what was read, else merged onto the other writer's change.
        await writeBack("a", (s) => void (s.n = 2));
        await writeBack(
          "a",
          (s) => void (s.n = 3),
          other(`UPDATE "${tableName}" SET value = '{"n":2,"m":5}' WHERE key = 'a'`),
        );
        // Unchanged, with less than half its time to live left: renewed if the row holds what was read, else not.
        const left = async () =>
          Number(
            (
              await tables.admin(
                `SELECT extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${tableName}" WHERE key = 'a'`,
              )
            )[0]?.left,
          );
        await rewindExpiries(tables.admin, tableName, 45_000);
        await writeBack("a", () => {});
        expect(await left()).toBeGreaterThan(50_000);
        await rewindExpiries(tables.admin, tableName, 45_000);
        await writeBack("a", () => {}, other(`UPDATE "${tableName}" SET value = '{"n":4,"m":5}' WHERE key = 'a'`));
        expect(await left()).toBeLessThan(20_000);

        expect(events.filter((event) => event.operation === "write").map((event) => event.write)).toStrictEqual([
          "set",
          "merged",
          "set",
          "merged",
          "renewed",
          "unchanged",
        ]);
        expect([await stored("a"), await stored("b")]).toStrictEqual(['{"n":4,"m":5}', '{"n":1,"m":1}']);

        const compareAndSets = statements.filter((text) => /value::text = \$|WHERE NOT \(/.test(text));
        expect(compareAndSets.length).toBeGreaterThanOrEqual(6);
        for (const text of compareAndSets) {
          if (alone) expect(text).toMatch(/^(UPDATE|INSERT) /);
          else expect(text).toMatch(/^WITH changed AS \((UPDATE|INSERT) .* RETURNING 1\) SELECT FROM changed$/);
        }
      } finally {
        await close();
      }
    });
  }

  it("through a pg Pool whose results leave out rowCount, fail in doubt and say what to pass instead", async () => {
    class Uncounted extends pg.Client {
      override query(...args: unknown[]): never {
        const answer = args.at(-1) as (error: Error | null, result?: unknown) => void;
        const config = args[0] as { text: string };
        return (super.query as (...a: unknown[]) => never)(
          config,
          args[1],
          (error: Error | null, result?: pg.QueryResult) =>
            answer(error, result === undefined ? undefined : { rows: result.rows }),
        );
      }
    }
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1, Client: Uncounted });
    try {
      const tableName = tables.table("uncounted");
      await tables.admin(createTableSql(tableName));
      const storage = new PostgresStorage<Session>({ client: pool, tableName });
      await storage.write("k", { n: 1 });
      const session = (await storage.read("k")) as Session;
      session.n = 2;
      const error = await storage.write("k", session).then(
        () => expect.fail("resolved"),
        (e: unknown) => e as PostgresStorageError,
      );
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "write",
        inDoubt: true,
      });
      expect(error.message).toContain("without its rowCount; pass pg's own Pool or Client");
      expect(error.message).toContain("may have taken effect");
    } finally {
      await pool.end();
    }
  });
});
