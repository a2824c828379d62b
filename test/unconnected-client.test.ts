import { Client as NeonClient } from "@neondatabase/serverless";
import { createClient } from "@vercel/postgres";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { PostgresStorage, PostgresStorageError, type PostgresClient } from "../src/index.js";
import { databaseUrl, uniqueTable } from "./support/clients.js";
import { useTables } from "./support/fixture.js";
import { useLocalNeon, vercelConnectionString } from "./support/neon-clients.js";

const NOT_CONNECTED =
  /the Client is not connected, and would wait forever: call await client\.connect\(\) first, or pass a Pool$/;

/** The error of an operation that must fail, and how long it took to fail. */
async function rejection(operation: () => Promise<unknown>): Promise<{ error: PostgresStorageError; ms: number }> {
  const started = performance.now();
  const error = await operation().then(
    () => {
      throw new Error("resolved instead of rejecting");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PostgresStorageError);
  return { error: error as PostgresStorageError, ms: performance.now() - started };
}

// pg queues a statement sent to a Client that was never connected until connect() is called:
// without a check, read() would never settle, and Node, with nothing else pending, exits with code 0 mid-update.
describe("a pg-style Client in a state where it cannot run statements", () => {
  const { admin, table } = useTables();

  it("never connected: every operation rejects at once with what to do, and nothing is left queued on the client", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    const storage = new PostgresStorage<number>({ client, tableName: table("unconnected") });
    const operations: [string, () => Promise<unknown>][] = [
      ["read", () => storage.read("k")],
      ["write", () => storage.write("k", 1)],
      ["update", () => storage.update("k", { a: 1 } as never)],
      ["has", () => storage.has("k")],
      ["delete", () => storage.delete("k")],
      [
        "readAll",
        async () => {
          for await (const key of storage.readAllKeys()) return key;
        },
      ],
      ["createTable", () => storage.createTable()],
    ];
    for (const [operation, run] of operations) {
      const { error, ms } = await rejection(run);
      expect(error.message).toMatch(new RegExp(`^${operation} of `));
      expect(error.message).toMatch(NOT_CONNECTED);
      expect(error.code).toBeUndefined();
      expect(ms).toBeLessThan(1_000); // not retried: connecting is the caller's to do
    }
    expect((client as unknown as { queryQueue?: unknown[]; _queryQueue?: unknown[] })._queryQueue ?? []).toHaveLength(
      0,
    );
    // The same storage works once the client is connected: storages are often created before connect().
    await client.connect();
    try {
      await storage.write("k", 2);
      expect(await storage.read("k")).toBe(2);
    } finally {
      await client.end();
    }
  });

  it("connecting: a statement sent while connect() is under way waits for it and runs", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    const storage = new PostgresStorage<number>({ client, tableName: table("connecting") });
    const connected = client.connect();
    try {
      await storage.write("k", 3);
      expect(await storage.read("k")).toBe(3);
    } finally {
      await connected;
      await client.end();
    }
  });

  it("a PoolClient checked out of a pg Pool runs as a connected Client", async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    const client = await pool.connect();
    try {
      const storage = new PostgresStorage<number>({ client, tableName: table("poolclient") });
      await storage.write("k", 4);
      expect(await storage.read("k")).toBe(4);
    } finally {
      client.release();
      await pool.end();
    }
  });

  it("ended: rejects at once saying a Client cannot be used again", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    const storage = new PostgresStorage<number>({ client, tableName: table("ended") });
    await storage.write("k", 5);
    await client.end();
    const { error, ms } = await rejection(() => storage.read("k"));
    expect(error.message).toMatch(
      /^read of key "k" in table "[^"]+" failed: the Client was ended \(client\.end\(\)\) and cannot run statements again: connect a new one, or pass a Pool$/,
    );
    expect(ms).toBeLessThan(1_000);
  });

  it("ended before it was ever connected: says it was ended", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.end();
    const { error } = await rejection(() => new PostgresStorage({ client }).read("k"));
    expect(error.message).toMatch(/the Client was ended/);
  });

  it.skipIf(inject("backend") === "pglite")(
    "its connection lost (pg_terminate_backend): says a Client never reconnects, without retrying in vain",
    async () => {
      const applicationName = uniqueTable("lost_client");
      const client = new pg.Client({ connectionString: databaseUrl(), application_name: applicationName });
      const lost: Error[] = [];
      client.on("error", (error) => lost.push(error));
      await client.connect();
      try {
        const storage = new PostgresStorage<number>({ client, tableName: table("lost") });
        await storage.write("k", 6);
        await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
          applicationName,
        ]);
        await expect.poll(() => lost.length).toBeGreaterThan(0);
        const { error, ms } = await rejection(() => storage.read("k"));
        expect(error.message).toMatch(
          /the Client lost its connection, and a Client never reconnects: connect a new one, or pass a Pool/,
        );
        expect(ms).toBeLessThan(1_000);
      } finally {
        await client.end().catch(() => {});
      }
    },
  );

  describe("Neon's and @vercel/postgres's Clients (forks of pg's)", () => {
    useLocalNeon();

    it.each<[string, () => PostgresClient & { connect(): Promise<unknown>; end(): Promise<unknown> }]>([
      ["Neon Client", () => new NeonClient(databaseUrl())],
      ["@vercel/postgres createClient()", () => createClient({ connectionString: vercelConnectionString() })],
    ])("%s never connected: rejects at once", async (_name, create) => {
      const client = create();
      const { error, ms } = await rejection(() =>
        new PostgresStorage({ client, tableName: table("neon_unconnected") }).read("k"),
      );
      expect(error.message).toMatch(NOT_CONNECTED);
      expect(ms).toBeLessThan(1_000);
    });

    it("Neon Client connected: works, and once ended says so", async () => {
      const client = new NeonClient(databaseUrl());
      await client.connect();
      const storage = new PostgresStorage<number>({ client, tableName: table("neon_connected") });
      try {
        await storage.write("k", 7);
        expect(await storage.read("k")).toBe(7);
      } finally {
        await client.end();
      }
      const { error } = await rejection(() => storage.read("k"));
      expect(error.message).toMatch(/the Client was ended/);
    });
  });
});
