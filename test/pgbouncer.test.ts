import { isDeepStrictEqual } from "node:util";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PostgresStorage, type PostgresClient } from "../src/index.js";
import { adminPool, databaseUrl, type ClientKind } from "./support/clients.js";
import { conformanceSuite } from "./support/conformance.js";
import { useTables } from "./support/fixture.js";
import { pgbouncerAvailability, startPgbouncer, type Pgbouncer } from "./support/pgbouncer.js";
import { recordPreparation, type SentStatement } from "./support/preparing.js";

// Behind a transaction-mode pooler each transaction may get another server
// connection, and PgBouncer before 1.21 does not carry prepared statements
// across: the storage prepares by default and must notice that by itself.

const availability = pgbouncerAvailability(inject("backend"));

/** The SQLSTATEs of a prepared statement lost by a pooler, which the storage absorbs. */
const LOST = ["26000", "42P05"];

/** What a caller got wrong or failed on, as text, so that a failing test shows every one. */
type Failures = string[];

/**
 * `callers` concurrent callers, each on a key of its own, run `rounds` rounds of
 * write, read, update, has (and every fifth round delete and read again),
 * checking every answer; resolves to how many operations ran and what failed.
 */
async function workload(
  storage: PostgresStorage<unknown>,
  label: string,
  callers: number,
  rounds: number,
): Promise<{ operations: number; failures: Failures }> {
  let operations = 0;
  const failures: Failures = [];
  const check = (what: string, actual: unknown, expected: unknown) => {
    // Key order is not compared: update() merges in jsonb, which orders keys its own way.
    if (!isDeepStrictEqual(actual, expected))
      failures.push(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  };
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      const key = `${label}:${caller}`;
      for (let round = 0; round < rounds; round += 1) {
        try {
          const value = { caller, round, tags: [round, "🧩"] };
          await storage.write(key, value);
          check(`${key} read after write`, await storage.read(key), value);
          check(`${key} update`, await storage.update(key, { extra: round }), { ...value, extra: round });
          check(`${key} has`, await storage.has(key), true);
          operations += 4;
          if (round % 5 === 4) {
            await storage.delete(key);
            check(`${key} read after delete`, await storage.read(key), undefined);
            operations += 2;
          }
        } catch (error) {
          failures.push(`${key} round ${round}: ${String(error)}`);
        }
      }
    }),
  );
  return { operations, failures };
}

const prepared = (sent: readonly SentStatement[]) => sent.filter((statement) => statement.prepared);
const failedWith = (sent: readonly SentStatement[]) =>
  sent.flatMap((statement) => (statement.error === undefined ? [] : [statement.error]));
// The storage's own DDL is never prepared; every other statement it sends is one of its prepared kinds.
const operational = (sent: readonly SentStatement[]) => sent.filter((statement) => !/^\s*CREATE /.test(statement.text));

/** Why a pg or postgres.js call failed, as the tests show it: SQLSTATE and message. */
async function errorOf(promise: PromiseLike<unknown>): Promise<{ code: unknown; message: string } | "resolved"> {
  try {
    await promise;
    return "resolved";
  } catch (error) {
    return { code: (error as { code?: unknown }).code, message: (error as Error).message };
  }
}

/** A promise with its resolve function outside, to hold a transaction open until a step of the test. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/**
 * Opens a transaction on `sql` (one connection), and with it keeps one of
 * PgBouncer's server connections, until the function it resolves to is called.
 */
async function hold(sql: postgres.Sql): Promise<() => Promise<void>> {
  const held = gate();
  const release = gate();
  const done = sql.begin(async (tx) => {
    await tx`SELECT 1`;
    held.open();
    await release.opened;
  });
  await held.opened;
  return async () => {
    release.open();
    await done;
  };
}

/** How a call settled within `ms`: its value, its error's code and message, or "hung". */
async function settle(
  promise: PromiseLike<unknown>,
  ms = 1_000,
): Promise<{ value: unknown } | { code: unknown; message: string } | "hung"> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), ms)));
  try {
    return await Promise.race([
      Promise.resolve(promise).then(
        (value) => ({ value: JSON.parse(JSON.stringify(value)) as unknown }),
        (error: { code?: unknown; message?: string }) => ({ code: error.code, message: String(error.message) }),
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

if ("unavailable" in availability) {
  // CI sets REQUIRE_PGBOUNCER: there a missing binary must fail the run, not pass it silently (PGlite runs still skip).
  const required = process.env.REQUIRE_PGBOUNCER === "1" && inject("backend") === "postgres";
  describe("PgBouncer in transaction mode", () => {
    if (required) {
      it("is available (REQUIRE_PGBOUNCER=1)", () => {
        throw new Error(availability.unavailable);
      });
    } else {
      it.skip(`skipped: ${availability.unavailable}`, () => {});
    }
  });
} else {
  const binary = availability.binary;

  describe("PgBouncer in transaction mode", () => {
    let bouncer: Pgbouncer;
    const { table } = useTables();
    beforeAll(async () => {
      bouncer = await startPgbouncer(binary, databaseUrl());
    });
    afterAll(async () => {
      await bouncer?.stop();
    });

    /** A client kind connected through the pooler; its admin goes to the server directly. */
    const throughPgbouncer = (
      name: string,
      connect: (url: string) => Promise<{ client: PostgresClient; close(): Promise<void> }>,
    ): ClientKind => ({
      name: `${name} through PgBouncer`,
      async open() {
        const { client, close } = await connect(bouncer.url);
        const direct = adminPool();
        return {
          client,
          admin: direct.admin,
          async close() {
            await close();
            await direct.close();
          },
        };
      },
    });

    describe("conformance, default options (preparing)", () => {
      conformanceSuite(
        throughPgbouncer("pg Pool", async (url) => {
          const pool = new pg.Pool({ connectionString: url, max: 4 });
          return { client: pool, close: () => pool.end() };
        }),
      );
      conformanceSuite(
        throughPgbouncer("pg Client", async (url) => {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          return { client, close: () => client.end() };
        }),
      );
      conformanceSuite(
        throughPgbouncer("postgres.js", async (url) => {
          const sql = postgres(url, { max: 4, onnotice: () => {} });
          return { client: sql, close: () => sql.end() };
        }),
      );
    });

    describe("pg", () => {
      it("a named query gets 42P05 or 26000 when PgBouncer 1.18 hands it another server connection: what the storage absorbs", async () => {
        // Two server connections, and transactions held open, decide which one each query gets.
        const small = await startPgbouncer(binary, databaseUrl(), { poolSize: 2 });
        const clients = await Promise.all(
          [1, 2, 3].map(async () => {
            const client = new pg.Client({ connectionString: small.url });
            await client.connect();
            return client;
          }),
        );
        const [holder, preparer, other] = clients as [pg.Client, pg.Client, pg.Client];
        try {
          const statement = { name: `probe_${process.pid}_${Date.now()}`, text: "SELECT $1::int AS n", values: [1] };
          await holder.query("BEGIN"); // holds server connection A
          expect((await preparer.query(statement)).rows).toStrictEqual([{ n: 1 }]); // prepared on B
          // Another client connection preparing the same name lands on B, the only free one.
          const exists = await errorOf(other.query(statement));
          expect(exists).toStrictEqual({
            code: "42P05",
            message: `prepared statement "${statement.name}" already exists`,
          });
          await other.query("BEGIN"); // now holds B
          await holder.query("COMMIT"); // frees A
          // pg knows the statement as prepared on its connection and sends only Bind; it lands on A.
          const missing = await errorOf(preparer.query(statement));
          expect(missing).toStrictEqual({
            code: "26000",
            message: `prepared statement "${statement.name}" does not exist`,
          });
          await other.query("COMMIT");
          expect(LOST).toContain((exists as { code: string }).code);
          expect(LOST).toContain((missing as { code: string }).code);
          console.log(
            `${small.version}, transaction mode, pg named query: ${JSON.stringify(exists)}, then ${JSON.stringify(missing)}`,
          );
        } finally {
          for (const client of clients) await client.end();
          await small.stop();
        }
      });

      it("a storage with default options serves concurrent callers over a Pool with no failure, and stops preparing", async () => {
        const pool = new pg.Pool({ connectionString: bouncer.url, max: 8 });
        try {
          const recorded = recordPreparation(pool);
          const storage = new PostgresStorage({ client: recorded.client, tableName: table("pool") });
          const { operations, failures } = await workload(storage, "pool", 24, 10);
          expect(failures).toStrictEqual([]);
          expect(operations).toBe(24 * 10 * 4 + 24 * 2 * 2);
          // Preparing did fail through the pooler, only ever as a lost statement (or the table not there yet), and was absorbed.
          const absorbed = failedWith(recorded.sent).filter((code) => code !== "42P01");
          expect(absorbed.length).toBeGreaterThan(0);
          expect(absorbed.filter((code) => !LOST.includes(code))).toStrictEqual([]);
          const before = recorded.sent.length;
          const again = await workload(storage, "pool-after", 8, 5);
          expect(again.failures).toStrictEqual([]);
          const after = recorded.sent.slice(before);
          expect(after.length).toBeGreaterThan(0);
          expect(prepared(after)).toStrictEqual([]);
          expect(failedWith(after)).toStrictEqual([]);
          console.log(
            `pg Pool through PgBouncer: ${operations} operations, ${recorded.sent.length - after.length} statements, ` +
              `${prepared(recorded.sent).length} prepared, ${absorbed.length} lost preparations absorbed (${[...new Set(absorbed)].join(", ")})`,
          );
        } finally {
          await pool.end();
        }
      });

      it("a storage with prepare: false never sends a named statement", async () => {
        const pool = new pg.Pool({ connectionString: bouncer.url, max: 8 });
        try {
          const recorded = recordPreparation(pool);
          const storage = new PostgresStorage({
            client: recorded.client,
            tableName: table("unprepared"),
            prepare: false,
          });
          const { failures } = await workload(storage, "unprepared", 16, 5);
          expect(failures).toStrictEqual([]);
          expect(recorded.sent.length).toBeGreaterThan(0);
          expect(prepared(recorded.sent)).toStrictEqual([]);
          expect(failedWith(recorded.sent).filter((code) => code !== "42P01")).toStrictEqual([]);
        } finally {
          await pool.end();
        }
      });

      it("on the server directly, without a pooler, a storage keeps preparing and answers right", async () => {
        const pool = new pg.Pool({ connectionString: databaseUrl(), max: 8 });
        try {
          const recorded = recordPreparation(pool);
          const storage = new PostgresStorage({ client: recorded.client, tableName: table("direct") });
          const { failures } = await workload(storage, "direct", 24, 5);
          expect(failures).toStrictEqual([]);
          const statements = operational(recorded.sent);
          expect(statements.length).toBeGreaterThan(0);
          // Every statement but the table's creation is prepared, from the first to the last, and none failed but for the missing table.
          expect(statements.filter((statement) => !statement.prepared)).toStrictEqual([]);
          expect(failedWith(recorded.sent).filter((code) => code !== "42P01")).toStrictEqual([]);
        } finally {
          await pool.end();
        }
      });
    });

    describe("postgres.js", () => {
      /** A postgres.js sql through the main PgBouncer, counting the storage's statements postgres.js sends, retries included. */
      const counting = (options: postgres.Options<Record<string, never>>, texts: () => readonly SentStatement[]) => {
        const executions = { count: 0 };
        // debug is called each time postgres.js builds a statement to send; its own type lookup at connect is not the storage's.
        const debug = (_connection: number, text: string) => {
          if (texts().some((statement) => statement.text === text)) executions.count += 1;
        };
        return { sql: postgres(bouncer.url, { onnotice: () => {}, debug, ...options }), executions };
      };

      it("a storage with default options on a default postgres.js works while each connection runs one statement at a time", async () => {
        let sent: readonly SentStatement[] = [];
        const { sql, executions } = counting({ max: 4 }, () => sent);
        try {
          const recorded = recordPreparation(sql);
          sent = recorded.sent;
          const storage = new PostgresStorage({ client: recorded.client, tableName: table("postgresjs") });
          // As many callers as connections: postgres.js never pipelines one statement behind another.
          const { operations, failures } = await workload(storage, "postgresjs", 4, 15);
          expect(failures).toStrictEqual([]);
          expect(failedWith(recorded.sent).filter((code) => code !== "42P01")).toStrictEqual([]);
          // postgres.js re-prepares a statement PgBouncer lost (26000) by itself: no error reaches the storage, which keeps preparing.
          expect(prepared(operational(recorded.sent))).toHaveLength(operational(recorded.sent).length);
          console.log(
            `postgres.js through PgBouncer, storage preparing: ${operations} operations, ${recorded.sent.length} statements, ` +
              `${executions.count - recorded.sent.length} sent again by postgres.js after "prepared statement does not exist"`,
          );
        } finally {
          await sql.end();
        }
      });

      for (const [label, options, storageOptions] of [
        ["postgres(url, { prepare: false })", { prepare: false }, {}],
        ["a default postgres.js and the storage's prepare: false", {}, { prepare: false }],
      ] as const) {
        it(`${label}: nothing prepared, no failure under concurrency`, async () => {
          let sent: readonly SentStatement[] = [];
          const { sql, executions } = counting({ max: 8, ...options }, () => sent);
          try {
            const recorded = recordPreparation(sql);
            sent = recorded.sent;
            const storage = new PostgresStorage({
              client: recorded.client,
              tableName: table("postgresjs_unprepared"),
              ...storageOptions,
            });
            const { failures } = await workload(storage, "postgresjs-unprepared", 24, 10);
            expect(failures).toStrictEqual([]);
            // Unnamed statements cannot be lost, so postgres.js never sends one again.
            expect(executions.count).toBe(recorded.sent.length);
            expect(failedWith(recorded.sent).filter((code) => code !== "42P01")).toStrictEqual([]);
          } finally {
            await sql.end();
          }
        });
      }

      describe("with two server connections, taken in turn", () => {
        let small: Pgbouncer;
        let holders: readonly [postgres.Sql, postgres.Sql];
        beforeAll(async () => {
          small = await startPgbouncer(binary, databaseUrl(), { poolSize: 2 });
          // The holders prepare nothing: their own statements would otherwise be lost too.
          const holder = () => postgres(small.url, { max: 1, prepare: false, onnotice: () => {} });
          holders = [holder(), holder()];
        });
        afterAll(async () => {
          for (const sql of holders ?? []) await sql.end();
          await small?.stop();
        });

        /**
         * Runs `warm` while the first holder keeps server connection A (so it runs on B),
         * then `run` while the second holder keeps B (so it runs on A), where what
         * `warm` prepared does not exist.
         */
        const elsewhere = async <R>(warm: () => Promise<unknown>, run: () => Promise<R>): Promise<R> => {
          const [first, second] = holders;
          const releaseA = await hold(first);
          await warm();
          const releaseB = await hold(second);
          await releaseA();
          try {
            return await run();
          } finally {
            await releaseB();
          }
        };

        it("a user's own tagged-template query fails with 26000 inside a transaction, unless postgres() gets prepare: false", async () => {
          const attempt = async (options: postgres.Options<Record<string, never>>) => {
            const sql = postgres(small.url, { max: 1, onnotice: () => {}, ...options });
            try {
              return await elsewhere(
                () => sql`SELECT ${1}::int AS n`,
                // postgres.js sends again a statement lost outside a transaction; inside one, the transaction is aborted by then.
                () => errorOf(sql.begin((tx) => tx`SELECT ${1}::int AS n`)),
              );
            } finally {
              await sql.end();
            }
          };
          const failed = await attempt({});
          expect(failed).toMatchObject({
            code: "26000",
            message: expect.stringMatching(/^prepared statement ".+" does not exist$/),
          });
          console.log(`postgres.js tagged template in sql.begin() through ${small.version}: ${JSON.stringify(failed)}`);
          expect(await attempt({ prepare: false })).toBe("resolved");
        });

        it("a user's own pipelined tagged-template queries whose statements were lost get the wrong columns or hang, unless prepare: false", async () => {
          const attempt = async (options: postgres.Options<Record<string, never>>) => {
            const sql = postgres(small.url, { max: 1, onnotice: () => {}, ...options });
            const pair = () => sql`SELECT ${1}::int AS a, ${"x"}::text AS b`;
            const single = () => sql`SELECT ${2}::int AS c`;
            try {
              return await elsewhere(
                async () => {
                  await pair();
                  await single();
                },
                // One connection: postgres.js pipelines the second behind the first.
                () => Promise.all([settle(pair()), settle(single())]),
              );
            } finally {
              // A hung query holds the connection: end it at once.
              await sql.end({ timeout: 0 });
            }
          };
          const expected = [{ value: [{ a: 1, b: "x" }] }, { value: [{ c: 2 }] }];
          const outcome = await attempt({});
          console.log(
            `postgres.js 3.4, two pipelined queries after PgBouncer lost their statements: ${JSON.stringify(outcome)}`,
          );
          expect(outcome).not.toStrictEqual(expected);
          expect(await attempt({ prepare: false })).toStrictEqual(expected);
        });

        // KNOWN ISSUE in the storage's default (see the report): postgres.js hides the lost statement from the storage,
        // so its fallback never starts, and postgres.js's own retry then breaks the connection. Flip to it() once fixed.
        it.fails("a storage with default options on a default postgres.js answers pipelined calls whose statements were lost", async () => {
          const sql = postgres(small.url, { max: 1, onnotice: () => {} });
          const storage = new PostgresStorage({ client: sql, tableName: table("postgresjs_pipelined") });
          try {
            const outcome = await elsewhere(
              async () => {
                await storage.write("a", { user: "a" });
                await storage.write("b", { user: "b" });
                await storage.read("a");
                await storage.has("b");
              },
              () => Promise.all([settle(storage.read("a")), settle(storage.has("b")), settle(storage.read("b"))]),
            );
            console.log(
              `storage on a default postgres.js, pipelined calls after PgBouncer lost their statements: ${JSON.stringify(outcome)}`,
            );
            expect(outcome).toStrictEqual([{ value: { user: "a" } }, { value: true }, { value: { user: "b" } }]);
          } finally {
            await sql.end({ timeout: 0 });
          }
        });
      });
    });
  });
}
