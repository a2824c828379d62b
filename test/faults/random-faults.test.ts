import { neon, neonConfig } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../../dev/fault-proxy.js";
import { PostgresStorage } from "../../src/index.js";
import { databaseUrl } from "../support/clients.js";
import { useFixture } from "../support/fixture.js";
import { useLocalNeon } from "../support/neon-clients.js";
import { runAgainstModel } from "./model.js";
import { useProxiedPool } from "./proxied-pool.js";

type Value = Record<string, number>;
const retry = { attempts: 4, baseDelayMs: 5, maxDelayMs: 50 };

describe("1,000 operations through a TCP proxy dropping connections at random", () => {
  const db = useFixture();
  const proxied = useProxiedPool(4, seededRandom(42));

  it("every operation answers right or rejects with PostgresStorageError, and no acknowledged write is lost", async () => {
    const table = db.table("random_faults");
    await new PostgresStorage({ client: db.pool, tableName: table }).createTable();
    const storage = new PostgresStorage<Value>({ client: proxied.pool, tableName: table, retry });
    Object.assign(proxied.proxy.settings, {
      probability: 0.04,
      faults: ["drop-before-query", "drop-mid-query", "drop-mid-response"],
      latencyMs: 0,
    });
    const run = await runAgainstModel(storage, { operations: 1_000, keys: 25, random: seededRandom(7) });
    Object.assign(proxied.proxy.settings, { probability: 0 });
    const injected =
      proxied.proxy.injected["drop-before-query"] +
      proxied.proxy.injected["drop-mid-query"] +
      proxied.proxy.injected["drop-mid-response"];
    console.log(
      `random faults: ${JSON.stringify(proxied.proxy.injected)}; ${run.succeeded} succeeded, ${run.failed} failed`,
    );
    expect(injected).toBeGreaterThanOrEqual(50);
    expect(run.succeeded + run.failed).toBe(1_000);
    expect(run.foreignErrors).toBe(0);
    expect(run.succeeded).toBeGreaterThan(900); // retries absorb most faults
    await run.check(new PostgresStorage<Value>({ client: db.pool, tableName: table }));
  });

  it("with retrying off, faults surface as PostgresStorageError and the model still holds", async () => {
    const table = db.table("random_faults_noretry");
    await new PostgresStorage({ client: db.pool, tableName: table }).createTable();
    const storage = new PostgresStorage<Value>({ client: proxied.pool, tableName: table, retry: false });
    Object.assign(proxied.proxy.settings, {
      probability: 0.04,
      faults: ["drop-before-query", "drop-mid-query", "drop-mid-response"],
    });
    const run = await runAgainstModel(storage, { operations: 300, keys: 10, random: seededRandom(11) });
    Object.assign(proxied.proxy.settings, { probability: 0 });
    expect(run.failed).toBeGreaterThan(0);
    expect(run.foreignErrors).toBe(0);
    await run.check(new PostgresStorage<Value>({ client: db.pool, tableName: table }));
  });
});

describe("operations through the Neon HTTP path failing at random (5xx, timeouts, cut-off answers)", () => {
  const db = useFixture();
  const local = useLocalNeon();

  beforeAll(() => {
    // The client gives up on an answer after 300 ms, as a function with a deadline would.
    neonConfig.fetchFunction = (url: string, init: RequestInit) =>
      fetch(url, { ...init, signal: AbortSignal.timeout(300) });
    Object.assign(local.endpoint.faults, { timeoutMs: 600, random: seededRandom(3) });
  });
  afterAll(() => {
    neonConfig.fetchFunction = undefined;
  });

  it("every operation answers right or rejects with PostgresStorageError, and no acknowledged write is lost", async () => {
    const table = db.table("neon_faults");
    await new PostgresStorage({ client: db.pool, tableName: table }).createTable();
    const storage = new PostgresStorage<Value>({ client: neon(databaseUrl()), tableName: table, retry });
    Object.assign(local.endpoint.faults, { probability: 0.08, kinds: ["5xx", "timeout", "truncate"] });
    const run = await runAgainstModel(storage, { operations: 400, keys: 15, random: seededRandom(5) });
    local.endpoint.faults.probability = 0;
    console.log(
      `neon faults: ${JSON.stringify(local.endpoint.faults.injected)}; ${run.succeeded} succeeded, ${run.failed} failed`,
    );
    expect(
      local.endpoint.faults.injected["5xx"] +
        local.endpoint.faults.injected.timeout +
        local.endpoint.faults.injected.truncate,
    ).toBeGreaterThanOrEqual(20);
    expect(run.foreignErrors).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 700)); // answers held back by "timeout" have landed
    await run.check(new PostgresStorage<Value>({ client: db.pool, tableName: table }));
  });
});
