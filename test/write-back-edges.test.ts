import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import {
  PostgresStorage,
  PostgresStorageError,
  type OperationEvent,
  type PostgresStorageOptions,
  type StatementEvent,
  type StorageEvent,
} from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { rewindExpiries, sleep, useFixture } from "./support/fixture.js";

// What the mutation run of write-back.ts and rows.ts (npm run mutate:database) found no test of: that a conflict
// decided as "leave the row" resolves (not only that the row is left), which operation a failed write-back names,
// what an observed write-back that keeps the other writer's value or renews nothing says, and a set whose answer
// was lost on a cut connection: a write-back's is retried and finds its own text, an update()'s is not retried.

type Triple = { a: number; b: number; c: number };
// The fields must add up to 15: a merge of two valid sessions can fail it.
const Fifteen = z.object({ a: z.number(), b: z.number(), c: z.number() }).refine((v) => v.a + v.b + v.c === 15);

describe("write-back edges", () => {
  const db = useFixture();
  const row = async (table: string) =>
    (await db.admin(`SELECT value::text AS value FROM "${table}" WHERE key = 'k'`))[0]?.value as string | undefined;
  const observed = <T>(options: Partial<PostgresStorageOptions<T>> & { tableName: string }) => {
    const events: StorageEvent[] = [];
    const storage = new PostgresStorage<T>({ client: db.pool, onEvent: (event) => events.push(event), ...options });
    return {
      storage,
      events,
      operations: () => events.filter((event): event is OperationEvent => event.kind === "operation"),
      statements: () => events.filter((event): event is StatementEvent => event.kind === "statement"),
    };
  };

  describe("a conflict the rule decides by leaving the row resolves, the row as the other writer left it", () => {
    /** Reads { a: 5, b: 5, c: 5 }; another writer stores `theirs`; writes back `ours`. */
    const conflict = async (onConflict: PostgresStorageOptions<Triple>["onConflict"], theirs: Triple | null) => {
      const tableName = db.table("wb_leave");
      const storage = new PostgresStorage<Triple>({
        client: db.pool,
        tableName,
        schema: Fifteen,
        ...(onConflict === undefined ? {} : { onConflict }),
      });
      await storage.write("k", { a: 5, b: 5, c: 5 });
      const session = (await storage.read("k")) as Triple;
      if (theirs === null) await db.admin(`DELETE FROM "${tableName}"`);
      else await db.admin(`UPDATE "${tableName}" SET value = $1::text::json`, [JSON.stringify(theirs)]);
      session.a = 6;
      session.b = 4;
      await storage.write("k", session); // resolves
      return row(tableName);
    };
    // Merged field by field: a conflicts (6 or 4), b is ours (4), c theirs (6): 16 either way, which the schema refuses.
    const theirs = { a: 4, b: 5, c: 6 };

    it("by default, ours whole", async () => {
      expect(await conflict(undefined, theirs)).toBe('{"a":6,"b":4,"c":5}');
    });
    it('"theirs": theirs', async () => {
      expect(await conflict("theirs", theirs)).toBe('{"a":4,"b":5,"c":6}');
    });
    it("a function that answers undefined: theirs", async () => {
      expect(await conflict(() => undefined, theirs)).toBe('{"a":4,"b":5,"c":6}');
    });
    it('"theirs" when the row was deleted meanwhile: no row', async () => {
      expect(await conflict("theirs", null)).toBeUndefined();
    });
  });

  it("a write-back with nothing left to apply keeps theirs, in two statements, and says so", async () => {
    const { storage, operations, statements } = observed<{ n: number }>({ tableName: db.table("wb_kept") });
    await storage.write("k", { n: 1 });
    const session = (await storage.read("k")) as { n: number };
    await db.admin(`UPDATE "${storage.tableName}" SET value = '{"n":2,"m":1}'`);
    session.n = 2; // the other writer's change too
    const before = statements().length;
    await storage.write("k", session);
    expect(
      statements()
        .slice(before)
        .map((event) => event.statement),
    ).toStrictEqual(["UPDATE", "SELECT"]);
    expect(operations().at(-1)).toMatchObject({ operation: "write", write: "kept theirs", outcome: "ok" });
    expect(await row(storage.tableName)).toBe('{"n":2,"m":1}');
  });

  it("a written-back session whose renewal finds the row changed renews nothing, and says so", async () => {
    const { storage, operations } = observed<{ n: number }>({
      tableName: db.table("wb_renew_lost"),
      millisecondsToLive: 60_000,
    });
    await storage.write("k", { n: 1 });
    await rewindExpiries(db.admin, storage.tableName, 45_000); // less than half its time to live is left
    const session = (await storage.read("k")) as { n: number };
    await db.admin(`UPDATE "${storage.tableName}" SET value = '{"n":2}'`);
    await storage.write("k", session); // unchanged: a renewal, which finds another text
    expect(operations().at(-1)).toMatchObject({ operation: "write", write: "unchanged", statements: 1 });
    expect(await row(storage.tableName)).toBe('{"n":2}');
    // Unchanged and found as read: renewed.
    await storage.write("k", { n: 3 });
    await rewindExpiries(db.admin, storage.tableName, 45_000);
    const fresh = (await storage.read("k")) as { n: number };
    await storage.write("k", fresh);
    expect(operations().at(-1)).toMatchObject({ operation: "write", write: "renewed", statements: 1 });
    const [{ left }] = (await db.admin(
      `SELECT extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${storage.tableName}"`,
    )) as [{ left: number }];
    expect(Number(left)).toBeGreaterThan(50_000);
  });

  it("write-backs and writes the database refuses name write", async () => {
    const tableName = db.table("wb_refused");
    const storage = new PostgresStorage<{ s: string }>({ client: db.pool, tableName });
    await storage.write("k", { s: "short" });
    await db.admin(`ALTER TABLE "${tableName}" ADD CONSTRAINT short CHECK (length(value::text) < 30)`);
    const session = (await storage.read("k")) as { s: string };
    session.s = "x".repeat(40);
    for (const attempt of [() => storage.write("k", session), () => storage.write("other", { s: "y".repeat(40) })]) {
      const error = await attempt().then(
        () => expect.fail("resolved"),
        (e: unknown) => e as PostgresStorageError,
      );
      expect(error).toBeInstanceOf(PostgresStorageError);
      expect({ code: error.code, operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        code: "23514",
        operation: "write",
        inDoubt: false,
      });
      expect(error.message).toMatch(/^write of key "(k|other)" in table /);
    }
    expect(await row(tableName)).toBe('{"s":"short"}');
  });

  // Needs a second session holding the row, which PGlite's single session cannot give.
  describe.skipIf(inject("backend") === "pglite")("a set whose connection is cut while it waits for the row", () => {
    // A local TCP proxy to the database whose connections can be cut, as a network failure does.
    let proxy: Server;
    let port = 0;
    const open = new Set<Socket>();
    beforeAll(async () => {
      const target = new URL(databaseUrl());
      proxy = createServer((client) => {
        const server = tcpConnect(Number(target.port || 5432), target.hostname);
        for (const socket of [client, server]) {
          open.add(socket);
          socket.on("error", () => {});
          socket.on("close", () => open.delete(socket));
        }
        client.pipe(server).pipe(client);
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      port = (proxy.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    });
    const cut = () => {
      for (const socket of open) socket.destroy();
    };

    /** A storage through the proxy, the row k holding { n: 1 }, and another session holding that row. */
    const held = async (label: string, schema?: z.ZodType<{ n: number }>) => {
      const tableName = db.table(label);
      const url = new URL(databaseUrl());
      url.hostname = "127.0.0.1";
      url.port = String(port);
      const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
      pool.on("error", () => {});
      const events: StorageEvent[] = [];
      const storage = new PostgresStorage<{ n: number }>({
        client: pool,
        tableName,
        retry: { attempts: 3, baseDelayMs: 0 },
        onEvent: (event) => events.push(event),
        ...(schema === undefined ? {} : { schema }),
      });
      await storage.write("k", { n: 1 });
      const holder = new pg.Client({ connectionString: databaseUrl() });
      await holder.connect();
      await holder.query("BEGIN");
      await holder.query(`SELECT key FROM "${tableName}" WHERE key = 'k' FOR UPDATE`);
      const waiting = async () => {
        for (let tries = 0; tries < 400; tries += 1) {
          const [found] = await db.admin(
            // A compare-and-set, alone (pg's Pool counts the rows it changed) or in a WITH that returns them.
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE $1 OR query LIKE $2)",
            [`UPDATE "${tableName}"%`, `WITH changed AS (UPDATE "${tableName}"%`],
          );
          if (found?.n === 1) return;
          await sleep(10);
        }
        throw new Error("the set never waited for the row");
      };
      return {
        storage,
        events,
        waiting,
        release: () => holder.query("COMMIT"),
        async close() {
          await holder.end();
          await pool.end();
        },
      };
    };

    it("a write-back's set is retried, finds its own text applied, and counts as set", async () => {
      const { storage, events, waiting, release, close } = await held("wb_cut");
      try {
        const session = (await storage.read("k")) as { n: number };
        session.n = 2;
        const written = storage.write("k", session);
        await waiting();
        cut(); // the set still runs on the server, once the row is free
        await waiting(); // retried, on a new connection
        await release();
        await written;
        expect(await row(storage.tableName)).toBe('{"n":2}');
        const last = events.filter((event): event is OperationEvent => event.kind === "operation").at(-1);
        expect(last).toMatchObject({ operation: "write", outcome: "ok", write: "set", retries: 1 });
      } finally {
        await close();
      }
    });

    it("an update()'s set is not retried: it rejects in doubt", async () => {
      const { storage, waiting, release, close } = await held("wb_cut_update", z.object({ n: z.number() }));
      try {
        const updated = storage.update("k", { n: 2 }).then(
          () => expect.fail("resolved"),
          (e: unknown) => e as PostgresStorageError,
        );
        await waiting();
        cut();
        const error = await updated;
        expect(error).toBeInstanceOf(PostgresStorageError);
        expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
          operation: "update",
          inDoubt: true,
        });
        await release();
      } finally {
        await close();
      }
    });
  });
});
