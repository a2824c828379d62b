import { isDeepStrictEqual } from "node:util";
import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { PostgresStorage, encryptedCodec, type Codec, type PostgresStorageOptions } from "../src/index.js";
import { rewindExpiries, useFixture, useIsolates } from "./support/fixture.js";

type Session = Record<string, unknown>;

// This storage remembers the text it believes a row holds after its own last operation. Another isolate (its own
// pool and storage on the same table), or the row's expiry, may have replaced that row since: a conflict, or a
// refusal, is decided on the row as the database holds it, never on that memory.
describe("decided on the row as it is, not on what this storage last wrote", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();
  /** The row's value as a storage that never saw it reads it (through `codec`, when the row is encoded). */
  const fresh = (tableName: string, codec?: Codec) =>
    new PostgresStorage<Session>({ client: db.pool, tableName, ...(codec ? { codec } : {}) }).read("chat");
  const stored = async (tableName: string) =>
    (await db.admin(`SELECT value::text AS value FROM "${tableName}" WHERE key = 'chat'`))[0]?.value as
      | string
      | undefined;
  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (failure: unknown) => failure,
    );

  describe.each([
    ["the default codec", undefined],
    ["JSON", JSON as Codec],
    ["encryptedCodec", encryptedCodec({ secret: "g".repeat(32) })],
  ])("a write-back after an update() of this isolate that another isolate overwrote (%s)", (_, codec) => {
    /**
     * A's handler reads { step: "idle", n: 0 }; an update() of A sets step to "menu" (what A now believes the row
     * holds); B sets step back to "idle" and n to 1; A's handler writes back step = "name". Only A's handler
     * changed step from the row as it is, and only B changed n.
     */
    const staleGuess = async (label: string, onConflict: PostgresStorageOptions<Session>["onConflict"]) => {
      const tableName = db.table(label);
      const a = new PostgresStorage<Session>({ client: isolate(), tableName, codec, onConflict });
      const b = new PostgresStorage<Session>({ client: isolate(), tableName, codec });
      await a.write("chat", { step: "idle", n: 0 });
      const session = (await a.read("chat")) as Session;
      expect(session).toStrictEqual({ step: "idle", n: 0 });
      await a.update("chat", { step: "menu" });
      await b.update("chat", { step: "idle", n: 1 });
      expect(await fresh(tableName, codec)).toStrictEqual({ step: "idle", n: 1 });
      session.step = "name";
      const error = await outcome(a.write("chat", session));
      return { error, row: await fresh(tableName, codec) };
    };

    it('onConflict "throw": no StorageConflictError, and the row keeps both changes', async () => {
      expect(await staleGuess("guess_throw", "throw")).toStrictEqual({
        error: undefined,
        row: { step: "name", n: 1 },
      });
    });

    it("an onConflict function is asked, if at all, about the row the database holds; the row keeps both changes", async () => {
      const asked: (Session | undefined)[] = [];
      const result = await staleGuess("guess_function", (_base, ours, theirs) => {
        asked.push(theirs);
        return ours;
      });
      // Asked about { step: "menu", n: 0 } (a row the database no longer holds), it would be told of a conflict in step.
      expect(asked.filter((theirs) => !isDeepStrictEqual(theirs, { step: "idle", n: 1 }))).toStrictEqual([]);
      expect(result).toStrictEqual({ error: undefined, row: { step: "name", n: 1 } });
    });
  });

  describe("update() checked in JavaScript (a schema, a codec not merged in the database)", () => {
    const Billing = z
      .object({ plan: z.enum(["free", "pro"]).optional(), seats: z.number() })
      .refine((session) => session.plan !== "free" || session.seats <= 1, "free plans have one seat");

    it("with a schema: a row that expired while the handler ran is not refused; the update creates the row", async () => {
      const tableName = db.table("guess_schema_expired");
      const storage = new PostgresStorage({
        client: isolate(),
        tableName,
        schema: Billing,
        millisecondsToLive: 60_000,
      });
      await storage.write("chat", { plan: "free", seats: 1 });
      expect(await storage.read("chat")).toStrictEqual({ plan: "free", seats: 1 });
      await rewindExpiries(db.admin, tableName, 120_000);
      expect(await fresh(tableName)).toBeUndefined();
      expect(await storage.update("chat", { seats: 5 })).toStrictEqual({ seats: 5 });
      expect(await stored(tableName)).toBe('{"seats":5}');
      expect(await fresh(tableName)).toStrictEqual({ seats: 5 });
    });

    it("with a schema: another isolate's upgrade to pro is merged into, not refused as a free plan with five seats", async () => {
      const tableName = db.table("guess_schema_upgraded");
      const a = new PostgresStorage({ client: isolate(), tableName, schema: Billing });
      const b = new PostgresStorage({ client: isolate(), tableName, schema: Billing });
      await a.write("chat", { plan: "free", seats: 1 });
      expect(await a.read("chat")).toStrictEqual({ plan: "free", seats: 1 });
      await b.update("chat", { plan: "pro" });
      expect(await a.update("chat", { seats: 5 })).toStrictEqual({ plan: "pro", seats: 5 });
      expect(await stored(tableName)).toBe('{"plan":"pro","seats":5}');
    });

    it("with superjson: an array row that expired is not refused as no object; the update creates the row", async () => {
      const tableName = db.table("guess_superjson_expired");
      const storage = new PostgresStorage<Session | number[]>({
        client: isolate(),
        tableName,
        codec: superjson,
        millisecondsToLive: 60_000,
      });
      await storage.write("chat", [1, 2]);
      await rewindExpiries(db.admin, tableName, 120_000);
      expect(await fresh(tableName, superjson)).toBeUndefined();
      expect(await storage.update("chat", { a: 1 })).toStrictEqual({ a: 1 });
      expect(await fresh(tableName, superjson)).toStrictEqual({ a: 1 });
    });

    it("with encryptedCodec: an object another isolate wrote over this one's array is merged into, not refused", async () => {
      const tableName = db.table("guess_encrypted_replaced");
      const codec = encryptedCodec({ secret: "h".repeat(32) });
      const a = new PostgresStorage<Session | string[]>({ client: isolate(), tableName, codec });
      const b = new PostgresStorage<Session | string[]>({ client: isolate(), tableName, codec });
      await a.write("chat", ["legacy", "array", "session"]);
      await b.write("chat", { step: "idle" });
      expect(await a.update("chat", { plan: "pro" })).toStrictEqual({ step: "idle", plan: "pro" });
      expect(await fresh(tableName, codec)).toStrictEqual({ step: "idle", plan: "pro" });
    });
  });
});
