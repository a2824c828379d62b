/**
 * Bun's SQL errors, provoked for real under Bun: they still have the shapes
 * that test/unit/error-shapes.test.ts copies (code, errno, message), and the
 * storage reads and classifies them as that table says.
 */
import { createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countStatements } from "../../../dev/counting.ts";
import { startFaultProxy, type FaultProxy } from "../../../dev/fault-proxy.ts";
import { PostgresStorage, PostgresStorageError } from "../../../src/index.ts";
import { mayHaveApplied, sqlState, transience } from "../../../src/driver/error-reading.ts";
import { databaseUrl, uniqueTable } from "../../support/clients.ts";
import { SQL, type BunSql } from "./bun-sql.ts";

const caught = (promise: PromiseLike<unknown>): Promise<unknown> =>
  Promise.resolve(promise).then(
    (value) => {
      throw new Error(`resolved to ${JSON.stringify(value)} instead of rejecting`);
    },
    (error: unknown) => error,
  );

/** What the error-shapes table says of an error, checked against a live one. */
function expectShape(
  error: unknown,
  shape: { code: string; errno?: string; message: string | RegExp; transience: ReturnType<typeof transience> },
) {
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).name).toBe("PostgresError");
  expect((error as { code?: unknown }).code).toBe(shape.code);
  expect((error as { errno?: unknown }).errno).toBe(shape.errno);
  expect((error as Error).message).toMatch(shape.message);
  expect(sqlState(error)).toBe(shape.errno);
  expect(transience(error)).toBe(shape.transience);
}

describe("Bun's SQL errors as they are", () => {
  let sql: BunSql;
  let admin: BunSql;
  let proxy: FaultProxy;
  const table = uniqueTable("bun_errors");
  beforeAll(async () => {
    sql = new SQL({ url: databaseUrl(), max: 1 });
    admin = new SQL({ url: databaseUrl(), max: 1 });
    proxy = await startFaultProxy(databaseUrl());
  });
  afterAll(async () => {
    await admin.unsafe(`DROP TABLE IF EXISTS "${table}"`, []);
    await Promise.all([sql.close(), admin.close(), proxy.stop()]);
  });

  it("a missing table: ERR_POSTGRES_SERVER_ERROR, 42P01 in errno", async () => {
    const error = await caught(sql.unsafe(`SELECT value FROM "${uniqueTable("never")}" WHERE key = $1`, ["k"]));
    expectShape(error, {
      code: "ERR_POSTGRES_SERVER_ERROR",
      errno: "42P01",
      message: /^relation ".*" does not exist$/,
      transience: undefined,
    });
  });

  it("a syntax error: a code of its own, 42601 in errno", async () => {
    const error = await caught(sql.unsafe("SELEC 1", []));
    expectShape(error, {
      code: "ERR_POSTGRES_SYNTAX_ERROR",
      errno: "42601",
      message: 'syntax error at or near "SELEC"',
      transience: undefined,
    });
  });

  it("a refused connection: not applied, retried, then a PostgresStorageError that says to check the connection", async () => {
    const refusing = new SQL("postgres://postgres@127.0.0.1:1/test");
    try {
      expectShape(await caught(refusing.unsafe("SELECT 1", [])), {
        code: "ERR_POSTGRES_CONNECTION_REFUSED",
        message: "Failed to connect",
        transience: "not-applied",
      });
      const counted = countStatements(refusing);
      const error = await caught(
        new PostgresStorage({ client: counted.client, retry: { attempts: 3, baseDelayMs: 1 } }).read("k"),
      );
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect((error as Error).message).toMatch(
        /^read of key "k" .* failed: Failed to connect\. Check the connection string/,
      );
      expect(counted.statements).toHaveLength(3);
    } finally {
      await refusing.close();
    }
  });

  it("a connect timeout: not applied", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const client = new SQL({
      url: `postgres://postgres@127.0.0.1:${(silent.address() as AddressInfo).port}/test`,
      connectionTimeout: 1,
    });
    try {
      expectShape(await caught(client.unsafe("SELECT 1", [])), {
        code: "ERR_POSTGRES_CONNECTION_TIMEOUT",
        message: /^Connection timeout after 1s/,
        transience: "not-applied",
      });
    } finally {
      await client.close();
      silent.close();
    }
  });

  it("a backend terminated mid-query: 57P01 in errno, may have applied", async () => {
    // Found by its text, not by a pid read beforehand: the pool may run it on another connection.
    const text = `SELECT pg_sleep(5) /* terminate ${crypto.randomUUID()} */`;
    // Bun sends a query only once something awaits it.
    const query = caught(sql.unsafe(text, []));
    for (let tries = 0; tries < 100; tries += 1) {
      const [found] = await admin.unsafe(
        "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE query = $1",
        [text],
      );
      if (found?.n === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expectShape(await query, {
      code: "ERR_POSTGRES_SERVER_ERROR",
      errno: "57P01",
      message: "terminating connection due to administrator command",
      transience: "unknown",
    });
    expect(await sql.unsafe("SELECT 1 AS ok", [])).toStrictEqual([{ ok: 1 }]);
  });

  it("query.cancel(): while it runs, 57014 from the server, not applied; before it ran, ERR_POSTGRES_QUERY_CANCELLED, in doubt", async () => {
    const running = sql.unsafe("SELECT pg_sleep(1)", []) as Promise<unknown> & { cancel(): void };
    const cancelled = caught(running);
    await new Promise((resolve) => setTimeout(resolve, 200));
    running.cancel();
    const byServer = await cancelled;
    expectShape(byServer, {
      code: "ERR_POSTGRES_SERVER_ERROR",
      errno: "57014",
      message: "canceling statement due to user request",
      transience: undefined,
    });
    expect(mayHaveApplied(byServer)).toBe(false);

    const waiting = sql.unsafe("SELECT 1", []) as Promise<unknown> & { cancel(): void };
    waiting.cancel();
    const byClient = await caught(waiting);
    expectShape(byClient, { code: "ERR_POSTGRES_QUERY_CANCELLED", message: "Query cancelled", transience: undefined });
    expect(mayHaveApplied(byClient)).toBe(true);
  });

  it("close({ timeout }) with a query in flight: ERR_POSTGRES_CONNECTION_CLOSED, in doubt", async () => {
    const closing = new SQL({ url: databaseUrl(), max: 1 });
    const inFlight = caught(closing.unsafe("SELECT pg_sleep(2)", []));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await closing.close({ timeout: 0.1 });
    const error = await inFlight;
    expectShape(error, { code: "ERR_POSTGRES_CONNECTION_CLOSED", message: "Connection closed", transience: "unknown" });
    expect(mayHaveApplied(error)).toBe(true);
  });

  it("statement_timeout: 57014 in errno, the server cancelled and rolled it back: not applied", async () => {
    const limited = new SQL({ url: databaseUrl(), max: 1, connection: { statement_timeout: "200" } } as never);
    try {
      const error = await caught(limited.unsafe("SELECT pg_sleep(1)", []));
      expectShape(error, {
        code: "ERR_POSTGRES_SERVER_ERROR",
        errno: "57014",
        message: "canceling statement due to statement timeout",
        transience: undefined,
      });
      expect(mayHaveApplied(error)).toBe(false);
    } finally {
      await limited.close();
    }
  });

  it("a connection dropped mid-query: ERR_POSTGRES_CONNECTION_CLOSED, and update() is not retried", async () => {
    const client = new SQL({ url: proxy.url, max: 1 });
    try {
      const counted = countStatements(client);
      const storage = new PostgresStorage<{ n?: number; m?: number }>({ client: counted.client, tableName: table });
      await storage.update("k", { n: 1 }); // creates the table, and prepares the statement on this connection
      proxy.settings.faults = ["drop-mid-response"];
      proxy.settings.probability = 1;
      const before = counted.statements.length;
      const error = await caught(storage.update("k", { m: 2 }));
      proxy.settings.probability = 0;
      expect(counted.statements.length - before).toBe(1);
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect((error as Error).message).toMatch(
        /update of key "k" .* failed: Connection closed\. .*may have taken effect and was not retried/,
      );
      expectShape((error as Error).cause, {
        code: "ERR_POSTGRES_CONNECTION_CLOSED",
        message: "Connection closed",
        transience: "unknown",
      });
      expect(await storage.read("k")).toStrictEqual({ n: 1, m: 2 }); // the answer was cut, not the statement
    } finally {
      proxy.settings.probability = 0;
      await client.close();
    }
  });

  it("a closed client: ERR_POSTGRES_CONNECTION_CLOSED, and a read rejects, never answers undefined", async () => {
    const closed = new SQL(databaseUrl());
    await closed.unsafe("SELECT 1", []);
    await closed.close();
    expectShape(await caught(closed.unsafe("SELECT 1", [])), {
      code: "ERR_POSTGRES_CONNECTION_CLOSED",
      message: "Connection closed",
      transience: "unknown",
    });
    const error = await caught(new PostgresStorage({ client: closed, retry: { baseDelayMs: 1 } }).read("k"));
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as PostgresStorageError).code).toBeUndefined();
  });
});
