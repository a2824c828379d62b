import pg from "pg";
import { describe, expect, it } from "vitest";
import { PostgresStorage, createTableSql } from "../src/index.js";
import { statementsFor } from "../src/statements.js";
import { databaseUrl } from "./support/clients.js";
import { useTables } from "./support/fixture.js";
import { rejection } from "./support/rejections.js";
import { countingPool, poolQueryingThrough } from "./support/counting-pool.js";
import { wrappedPool } from "./support/wrapped-pool.js";

// A pg Pool whose connect() is its class's own gets each untraced statement sent alone: checked out with a callback,
// sent, and given back in one promise. What every other test reaches through a counting wrapper (whose connect() is
// its own, so it is called the promise's way), these reach on pools of pg's own class or subclasses of it.

const commands = (statements: readonly string[]) =>
  statements.map((text) => /^\s*(?:WITH \w+ AS \(\s*)?(\w+)/i.exec(text)?.[1]?.toUpperCase());

describe("a pg Pool's statements sent alone", () => {
  const tables = useTables();

  it("are checked out with a callback, one statement per checkout, and answer as through any client", async () => {
    const { pool, statements, connects } = countingPool();
    try {
      const tableName = tables.table("alone");
      await tables.admin(createTableSql(tableName));
      const storage = new PostgresStorage<{ n: number }>({ client: pool, tableName });
      await storage.write("k", { n: 1 });
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
      expect(await storage.has("k")).toBe(true);
      await storage.delete("k");
      expect(await storage.read("k")).toBeUndefined();
      expect(commands(statements)).toStrictEqual(["INSERT", "SELECT", "SELECT", "DELETE", "SELECT"]);
      expect(connects).toStrictEqual([1, 1, 1, 1, 1]);
    } finally {
      await pool.end();
    }
  });

  it("find a missing table, create it once and write, with no statement more than a traced one sends", async () => {
    const alone = countingPool();
    const traced = countingPool();
    try {
      const storages = [
        new PostgresStorage<number>({ client: alone.pool, tableName: tables.table("alone_missing") }),
        new PostgresStorage<number>({ client: traced.pool, tableName: tables.table("traced_missing"), onEvent() {} }),
      ];
      for (const storage of storages) {
        expect(await storage.read("k")).toBeUndefined();
        await storage.write("k", 7);
        expect(await storage.read("k")).toBe(7);
      }
      expect(commands(alone.statements)).toStrictEqual(["SELECT", "INSERT", "CREATE", "INSERT", "SELECT"]);
      expect(commands(alone.statements)).toStrictEqual(commands(traced.statements));
    } finally {
      await alone.pool.end();
      await traced.pool.end();
    }
  });

  it("whose preparation was lost run again unprepared, without failing the call", async () => {
    const { pool } = countingPool(1);
    const name = tables.table("alone_deallocated");
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: name });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
      const connection = await (pool as pg.Pool).connect();
      try {
        await connection.query(`DEALLOCATE "${statementsFor(`"${name}"`).read.name}"`);
      } finally {
        connection.release();
      }
      expect(await storage.read("k")).toBe(1);
      await storage.write("k", 2);
      expect(await storage.read("k")).toBe(2);
    } finally {
      await pool.end();
    }
  });

  it("reach a subclass's connect() that answers by its promise alone, or by both, and give each connection back once", async () => {
    const connects: number[] = [];
    class PromiseOnly extends pg.Pool {
      override connect(...args: unknown[]): never {
        connects.push(args.length);
        return super.connect() as never;
      }
    }
    class Both extends pg.Pool {
      override connect(...args: unknown[]): never {
        connects.push(args.length);
        const [callback] = args as [((error: unknown, client?: pg.PoolClient) => void) | undefined];
        const connected = super.connect();
        connected.then(
          (client) => callback?.(undefined, client),
          (error: unknown) => callback?.(error),
        );
        return connected as never;
      }
    }
    for (const Pool of [PromiseOnly, Both]) {
      const pool = new Pool({ connectionString: databaseUrl(), max: 1 });
      try {
        const tableName = tables.table("alone_subclass");
        await tables.admin(createTableSql(tableName));
        const storage = new PostgresStorage<number>({ client: pool, tableName });
        for (let i = 0; i < 20; i += 1) await storage.write(`k${i % 3}`, i);
        expect(await storage.read("k1")).toBe(19);
        expect(pool.totalCount).toBe(1);
        expect(pool.idleCount).toBe(1);
      } finally {
        await pool.end();
      }
    }
    expect(connects.length).toBeGreaterThan(40);
    expect(connects.every((args) => args === 1)).toBe(true);
  });

  it("give a connection back once when its client answers a statement both by the callback and by a promise", async () => {
    const pool = poolQueryingThrough((query, args) => {
      const callback = args.at(-1);
      if (typeof callback !== "function") return query(...args);
      return new Promise((resolve, reject) => {
        query(...args.slice(0, -1), (error: Error | null, result: unknown) => {
          (callback as (error: Error | null, result: unknown) => void)(error, result);
          return error ? reject(error) : resolve(result);
        });
      });
    });
    try {
      const tableName = tables.table("alone_twice");
      await tables.admin(createTableSql(tableName));
      const storage = new PostgresStorage<number>({ client: pool, tableName });
      for (let i = 0; i < 20; i += 1) await storage.write(`k${i % 3}`, i);
      expect(await storage.read("k1")).toBe(19);
      expect(pool.idleCount).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("count a failed checkout as not sent, so that update() is retried after it", async () => {
    let failures = 1;
    class Refusing extends pg.Pool {
      override connect(...args: unknown[]): never {
        const [callback] = args as [((error: unknown) => void) | undefined];
        if (failures > 0 && callback !== undefined) {
          failures -= 1;
          // In the words pg uses for a connection lost mid-statement, which alone would leave a write in doubt.
          setTimeout(() => callback(new Error("Connection terminated unexpectedly")), 1);
          return undefined as never;
        }
        return (super.connect as (...a: unknown[]) => never)(...args);
      }
    }
    const pool = new Refusing({ connectionString: databaseUrl(), max: 1 });
    try {
      const tableName = tables.table("alone_refused");
      await tables.admin(createTableSql(tableName));
      const storage = new PostgresStorage<{ a?: number; b?: number }>({ client: pool, tableName });
      expect(await storage.update("k", { a: 1 })).toStrictEqual({ a: 1 });
      expect(failures).toBe(0);
      expect(await storage.read("k")).toStrictEqual({ a: 1 });
    } finally {
      await pool.end();
    }
  });
});

describe("a pg Pool's statement sent alone, on a client that throws", () => {
  const tables = useTables();

  it("rejects, and gives the connection back", async () => {
    let throwing = false;
    const pool = poolQueryingThrough((query, args) => {
      if (throwing) throw new TypeError("refused at once");
      return query(...args);
    });
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: tables.table("alone_throwing") });
      await storage.write("k", 1);
      throwing = true;
      const error = await rejection(storage.read("k"));
      expect(error.message).toContain("refused at once");
      expect(error.cause).toBeInstanceOf(TypeError);
      throwing = false;
      expect(await storage.read("k")).toBe(1);
      expect(pool.idleCount).toBe(1);
    } finally {
      await pool.end();
    }
  });
});

describe("a pg Pool's statement sent alone, answered strangely", () => {
  const tables = useTables();

  it("fails when the client's promise rejects with no reason, saying so", async () => {
    let silent = false;
    const pool = poolQueryingThrough((query, args) => (silent ? Promise.reject(undefined) : query(...args)));
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: tables.table("alone_silent") });
      await storage.write("k", 1);
      silent = true;
      expect((await rejection(storage.read("k"))).message).toContain("query() rejected with undefined");
      silent = false;
      expect(await storage.read("k")).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("settles when giving the connection back throws", async () => {
    let throwing = false;
    // pg-pool sets each checkout's release() on the client; this one throws once after releasing.
    class ThrowingRelease extends pg.Client {
      #release: ((error?: unknown) => void) | undefined;
      get release() {
        return (error?: unknown) => {
          this.#release?.(error);
          if (!throwing) return;
          throwing = false;
          throw new Error("release threw");
        };
      }
      set release(release: (error?: unknown) => void) {
        this.#release = release;
      }
    }
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1, Client: ThrowingRelease });
    try {
      const storage = new PostgresStorage<number>({ client: pool, tableName: tables.table("alone_release") });
      await storage.write("k", 1);
      throwing = true;
      expect((await rejection(storage.read("k"))).cause).toMatchObject({ message: "release threw" });
      expect(await storage.read("k")).toBe(1);
    } finally {
      await pool.end();
    }
  });
});

describe("a pooled client's error listener", () => {
  const tables = useTables();

  it("stays one listener on a client that comes back, and leaves the user's own checkout as it was", async () => {
    const single = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const connection = await single.connect();
      const listening = connection.listenerCount("error");
      connection.release();
      const storage = new PostgresStorage<number>({ client: single, tableName: tables.table("listener_kept") });
      for (let i = 0; i < 15; i += 1) await storage.write(`k${i}`, i);
      const again = await single.connect();
      try {
        expect(again).toBe(connection);
        expect(again.listenerCount("error")).toBe(listening + 1);
        // Heard by no one else, an error is thrown as the client throws it with no listener.
        const lost = new Error("connection lost");
        expect(() => again.emit("error", lost)).toThrow(lost);
        // Heard by the user, it is the user's.
        const heard: Error[] = [];
        const mine = (error: Error) => void heard.push(error);
        again.on("error", mine);
        expect(() => again.emit("error", lost)).not.toThrow();
        expect(heard).toStrictEqual([lost]);
        again.removeListener("error", mine);
      } finally {
        again.release();
      }
      expect(await storage.read("k3")).toBe(3);
    } finally {
      await single.end();
    }
  });

  it("on an idle client leaves its errors to the pool", async () => {
    const single = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    const poolErrors: Error[] = [];
    single.on("error", (error) => void poolErrors.push(error));
    try {
      const storage = new PostgresStorage<number>({ client: single, tableName: tables.table("listener_idle") });
      for (let i = 0; i < 5; i += 1) await storage.write(`k${i}`, i);
      const idle = await single.connect();
      idle.release();
      const lost = new Error("server restarted");
      expect(() => idle.emit("error", lost)).not.toThrow();
      expect(poolErrors).toStrictEqual([lost]);
      expect(single.totalCount).toBe(0);
      expect(await storage.read("k3")).toBe(3);
    } finally {
      await single.end();
    }
  });

  /** A Pool of one connection for `use`, ended after it. */
  async function onePool(use: (pool: pg.Pool) => Promise<void>) {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      await use(pool);
    } finally {
      await pool.end();
    }
  }

  /** A storage whose writes have checked the pool's one client out and given it back five times. */
  async function cameBack(pool: pg.Pool, label: string) {
    const storage = new PostgresStorage<number>({ client: pool, tableName: tables.table(label) });
    for (let i = 0; i < 5; i += 1) await storage.write(`k${i}`, i);
    return storage;
  }

  /** The pool's one client, checked out by the user for `use`, given back after. */
  async function holding(pool: pg.Pool, use: (client: pg.PoolClient) => void) {
    const client = await pool.connect();
    try {
      use(client);
    } finally {
      client.release();
    }
    return client;
  }

  it("comes back after a user removed every listener", () =>
    onePool(async (single) => {
      const storage = await cameBack(single, "listener_removed");
      const held = await holding(single, (client) => client.removeAllListeners("error"));
      await storage.write("k", 1);
      await holding(single, (again) => {
        expect(again).toBe(held);
        expect(again.listenerCount("error")).toBe(1);
      });
    }));

  it("runs before a once-listener a user left behind, which still hears the error", () =>
    onePool(async (single) => {
      const heard: Error[] = [];
      await holding(single, (client) => client.once("error", (error) => void heard.push(error)));
      await cameBack(single, "listener_once");
      await holding(single, (again) => {
        const lost = new Error("connection lost");
        expect(() => again.emit("error", lost)).not.toThrow();
        expect(heard).toStrictEqual([lost]);
      });
    }));

  it("takes another copy of this library's listener (ESM beside CommonJS) for no one else", () =>
    onePool(async (single) => {
      await cameBack(single, "listener_copy");
      await holding(single, (held) => {
        const otherCopy = Object.assign(() => {}, {
          [Symbol.for("grammy-postgres-storage: a pooled client's error listener")]: true,
        });
        held.on("error", otherCopy);
        try {
          const lost = new Error("connection lost");
          expect(() => held.emit("error", lost)).toThrow(lost);
        } finally {
          held.removeListener("error", otherCopy);
        }
      });
    }));

  it("goes with a wrapper's object per checkout, which never comes back", async () => {
    const single = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const connection = await single.connect();
      const listening = connection.listenerCount("error");
      connection.release();
      const storage = new PostgresStorage<number>({
        client: wrappedPool(single, (query) => query),
        tableName: tables.table("listener_wrapped"),
      });
      for (let i = 0; i < 15; i += 1) await storage.write(`k${i}`, i);
      expect(await storage.read("k3")).toBe(3);
      const again = await single.connect();
      try {
        expect(again).toBe(connection);
        expect(again.listenerCount("error")).toBe(listening);
      } finally {
        again.release();
      }
    } finally {
      await single.end();
    }
  });
});
