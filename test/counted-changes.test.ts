import { describe, expect, it } from "vitest";
import { countStatements } from "../dev/counting.js";
import { poolQueryingThrough, reshapingAnswers } from "./support/counting-pool.js";
import { PostgresStorage, createTableSql, type OperationEvent, type PostgresClient } from "../src/index.js";
import { clientKinds, onServer, type Admin, type ClientKind } from "./support/clients.js";
import { rewindExpiries, useTables } from "./support/fixture.js";
import { neonClientKinds } from "./support/neon-clients.js";
import { rejection } from "./support/rejections.js";

// A compare-and-set answers whether it changed the row. Through a client whose answers carry how many rows a statement
// changed (pg's rowCount: pg, Neon's Pool and Client, @vercel/postgres; postgres.js's and Bun's count), it goes alone
// once an answer has shown that count; through any other client it goes inside `WITH changed AS (… RETURNING 1) SELECT FROM changed`, which returns a row per row
// changed. Each client meets the same compare-and-sets, each way they can end, with another writer touching the row
// in between, and must end with the same outcomes and the same rows.

type Session = { n?: number; m?: number };

/** A pg Pool whose clients answer `{ rows }` alone, as a Pool's own `Client` class or a wrapper may. */
const rowsOnly = onServer("a pg Pool whose Client class answers { rows } alone", async () => {
  const pool = poolQueryingThrough(
    reshapingAnswers((result) => ({ rows: result.rows })),
    2,
  );
  return { client: pool, close: () => pool.end() };
});

const ALONE = /^(pg Pool|pg Client|postgres\.js|Neon (Pool|Client)|@vercel\/postgres)/;

/** Write-backs of every kind, each with and without another writer in between; answers the compare-and-sets sent. */
async function compareAndSets(client: PostgresClient, admin: Admin, tableName: string) {
  const counted = countStatements(client);
  await admin(createTableSql(tableName));
  const events: OperationEvent[] = [];
  const storage = new PostgresStorage<Session>({
    client: counted.client,
    tableName,
    millisecondsToLive: 60_000,
    onEvent: (event) => void (event.kind === "operation" && events.push(event)),
  });
  const writeBack = async (key: string, change: (session: Session) => void, meanwhile?: string) => {
    const session = (await storage.read(key)) ?? {};
    change(session);
    if (meanwhile !== undefined) await admin(meanwhile);
    await storage.write(key, session);
  };
  const row = async (key: string) => {
    const [found] = await admin(
      `SELECT value::text AS v, extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${tableName}" WHERE key = $1`,
      [key],
    );
    return { value: found?.v, left: Number(found?.left) };
  };

  // A session new to the row: set if no row is there, else merged onto the one another writer made meanwhile.
  await writeBack("a", (s) => void (s.n = 1));
  await writeBack("b", (s) => void (s.n = 1), `INSERT INTO "${tableName}" (key, value) VALUES ('b', '{"m":1}')`);
  // A session changed: set if the row holds what was read, else merged onto the other writer's change.
  await writeBack("a", (s) => void (s.n = 2));
  await writeBack("a", (s) => void (s.n = 3), `UPDATE "${tableName}" SET value = '{"n":2,"m":5}' WHERE key = 'a'`);
  // Unchanged, with less than half its time to live left: renewed if the row holds what was read, else not.
  await rewindExpiries(admin, tableName, 45_000);
  await writeBack("a", () => {});
  expect((await row("a")).left).toBeGreaterThan(50_000);
  await rewindExpiries(admin, tableName, 45_000);
  await writeBack("a", () => {}, `UPDATE "${tableName}" SET value = '{"n":4,"m":5}' WHERE key = 'a'`);
  expect((await row("a")).left).toBeLessThan(20_000);

  expect(events.filter((event) => event.operation === "write").map((event) => event.write)).toStrictEqual([
    "set",
    "merged",
    "set",
    "merged",
    "renewed",
    "unchanged",
  ]);
  expect([(await row("a")).value, (await row("b")).value]).toStrictEqual(['{"n":4,"m":5}', '{"n":1,"m":1}']);
  return counted.statements.filter((text) => /value::text = \$|WHERE NOT \(/.test(text));
}

describe("compare-and-sets", () => {
  const tables = useTables();

  for (const kind of [...clientKinds, ...neonClientKinds, rowsOnly] as ClientKind[]) {
    const alone = ALONE.test(kind.name);
    it(`through ${kind.name}, go ${alone ? "alone, read by their count" : "inside a WITH that returns their rows"}`, async () => {
      const { client, admin, close } = await kind.open();
      try {
        const sent = await compareAndSets(client, admin, tables.table("counted"));
        expect(sent.length).toBeGreaterThanOrEqual(6);
        for (const text of sent) {
          if (alone) expect(text).toMatch(/^(UPDATE|INSERT) /);
          else expect(text).toMatch(/^WITH changed AS \((UPDATE|INSERT) .* RETURNING 1\) SELECT FROM changed$/);
        }
      } finally {
        await close();
      }
    });
  }

  it("through a pg Pool whose answers to changes alone leave out rowCount, fail in doubt and say what to pass", async () => {
    const pool = poolQueryingThrough(
      reshapingAnswers(
        (result) => ({ rows: result.rows }),
        (text) => text.startsWith("UPDATE"),
      ),
    );
    try {
      const tableName = tables.table("uncounted");
      await tables.admin(createTableSql(tableName));
      const storage = new PostgresStorage<Session>({ client: pool, tableName });
      await storage.write("k", { n: 1 });
      const session = (await storage.read("k")) as Session;
      session.n = 2;
      const error = await rejection(storage.write("k", session));
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "write",
        inDoubt: true,
      });
      expect(error.message).toContain("without the count of changed rows its earlier answers carried");
      expect(error.message).toContain("Its answer could not be read, so it may have taken effect; read the key to see");
      const [stored] = await tables.admin(`SELECT value::text AS v FROM "${tableName}"`);
      expect(stored?.v).toBe('{"n":2}');
    } finally {
      await pool.end();
    }
  });
});
