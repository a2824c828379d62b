import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  PostgresStorage,
  StorageValidationError,
  type OperationEvent,
  type StatementEvent,
  type StorageEvent,
} from "../src/index.js";
import { useFixture } from "./support/fixture.js";

describe("observability: an event per operation and statement, a span per operation", () => {
  const db = useFixture(4);
  const observed = <T>(label: string, options: Partial<ConstructorParameters<typeof PostgresStorage<T>>[0]> = {}) => {
    const events: StorageEvent[] = [];
    const tableName = db.table(label);
    const storage = new PostgresStorage<T>({
      client: db.pool,
      tableName,
      onEvent: (event) => events.push(event),
      ...options,
    });
    const operations = () => events.filter((event): event is OperationEvent => event.kind === "operation");
    const statements = () => events.filter((event): event is StatementEvent => event.kind === "statement");
    return { storage, tableName, events, operations, statements };
  };

  it("tells what each operation sent and how a write was applied; keys only with logKeys", async () => {
    const { storage, tableName, events, operations, statements } = observed<{ n: number; x?: number }>("events");
    await storage.write("k", { n: 1 }); // creates the table
    const session = (await storage.read("k")) as { n: number };
    await storage.write("k", session); // unchanged
    session.n = 2;
    await storage.write("k", session); // set
    const again = (await storage.read("k")) as { n: number };
    await db.admin(`UPDATE "${tableName}" SET value = '{"n":2,"x":9}'`); // another isolate
    again.n = 3;
    await storage.write("k", again); // merged
    await storage.delete("k");
    const summary = operations().map(({ operation, statements: sent, retries, outcome, write, createdTable }) => ({
      operation,
      sent,
      retries,
      outcome,
      ...(write === undefined ? {} : { write }),
      ...(createdTable === undefined ? {} : { createdTable }),
    }));
    expect(summary).toStrictEqual([
      { operation: "write", sent: 3, retries: 0, outcome: "ok", write: "replaced", createdTable: true },
      { operation: "read", sent: 1, retries: 0, outcome: "ok" },
      { operation: "write", sent: 0, retries: 0, outcome: "ok", write: "unchanged" },
      { operation: "write", sent: 1, retries: 0, outcome: "ok", write: "set" },
      { operation: "read", sent: 1, retries: 0, outcome: "ok" },
      { operation: "write", sent: 3, retries: 0, outcome: "ok", write: "merged" },
      { operation: "delete", sent: 1, retries: 0, outcome: "ok" },
    ]);
    expect(statements().map((event) => event.statement)).toStrictEqual([
      "INSERT",
      "CREATE",
      "INSERT",
      "SELECT",
      "UPDATE",
      "SELECT",
      "UPDATE",
      "SELECT",
      "UPDATE",
      "DELETE",
    ]);
    expect(
      statements()
        .filter((event) => event.outcome === "error")
        .map((event) => event.code),
    ).toStrictEqual(["42P01"]);
    expect(events.every((event) => event.table === tableName && event.durationMs >= 0)).toBe(true);
    expect(events.some((event) => "key" in event)).toBe(false);
    const withKeys = observed<number>("events_keys", { logKeys: true });
    await withKeys.storage.write("42", 1);
    expect(withKeys.operations().map((event) => event.key)).toStrictEqual(["42"]);
  });

  it("names a statement by its command, the one inside WITH … AS (…) too", async () => {
    const { storage, statements } = observed<{ n: number }>("commands", { millisecondsToLive: 60_000 });
    await storage.write("k", { n: 1 }); // creates the table
    const before = statements().length;
    expect(await storage.has("k")).toBe(true);
    expect(await storage.update("k", { n: 2 })).toStrictEqual({ n: 2 });
    expect(await storage.prune()).toBe(0);
    // has() selects no column; update() merges in one INSERT; prune() deletes inside WITH gone AS (DELETE …).
    expect(
      statements()
        .slice(before)
        .map((event) => event.statement),
    ).toStrictEqual(["SELECT", "INSERT", "DELETE"]);
  });

  it("a retried operation's events tell the truth: each try a statement, the retries counted", async () => {
    let failNext = 0;
    // A client whose first statement meets a refused connection (it never reached the server), then the real pool.
    const flaky = {
      query: (text: string, params: unknown[]) => {
        if (failNext > 0) {
          failNext -= 1;
          return Promise.reject(
            Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
          );
        }
        return db.pool.query(text, params);
      },
    };
    const { storage, operations, statements, events } = observed<number>("events_retry", { client: flaky });
    await storage.createTable();
    events.length = 0;
    failNext = 1;
    expect(await storage.read("k")).toBeUndefined();
    expect(operations()).toMatchObject([{ operation: "read", statements: 2, retries: 1, outcome: "ok" }]);
    expect(statements().map((event) => event.outcome)).toStrictEqual(["error", "ok"]);
  });

  it("a failure ends the operation with its class, SQLSTATE and whether it is in doubt", async () => {
    const { storage, tableName, operations } = observed<{ n: number }>("events_failure", {
      schema: z.object({ n: z.number() }),
    });
    await expect(storage.write("k", { n: "x" } as never)).rejects.toBeInstanceOf(StorageValidationError);
    await db.admin(`CREATE TABLE "${tableName}" (key text PRIMARY KEY)`);
    await expect(storage.read("k")).rejects.toThrow(/42703/);
    expect(operations()).toMatchObject([
      { operation: "write", outcome: "error", error: "StorageValidationError", statements: 0 },
      { operation: "read", outcome: "error", error: "PostgresStorageError", code: "42703", statements: 1 },
    ]);
  });

  it("an onEvent that throws does not fail the operation", async () => {
    const storage = new PostgresStorage<number>({
      client: db.pool,
      tableName: db.table("events_throwing"),
      onEvent: () => {
        throw new Error("logger broke");
      },
    });
    await storage.write("k", 1);
    expect(await storage.read("k")).toBe(1);
  });

  it("the OpenTelemetry SDK records a client span per operation with its attributes and status", async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tableName = db.table("spans");
    const storage = new PostgresStorage<{ n: number }>({
      client: db.pool,
      tableName,
      tracer: provider.getTracer("test"),
      schema: z.object({ n: z.number() }),
    });
    await storage.write("k", { n: 1 });
    await storage.read("k");
    await expect(storage.write("k", { n: "x" } as never)).rejects.toThrow();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.name)).toStrictEqual([
      `write ${tableName}`,
      `read ${tableName}`,
      `write ${tableName}`,
    ]);
    expect(spans.every((span) => span.kind === SpanKind.CLIENT)).toBe(true);
    expect(spans[0]?.attributes).toStrictEqual({
      "db.system.name": "postgresql",
      "db.operation.name": "write",
      "db.collection.name": tableName,
      "db.grammy.statements": 3,
      "db.grammy.retries": 0,
      "db.grammy.write": "replaced",
      "db.grammy.created_table": true,
    });
    expect(spans[1]?.status.code).toBe(SpanStatusCode.UNSET);
    expect(spans[2]?.status.code).toBe(SpanStatusCode.ERROR);
    expect(spans[2]?.attributes["error.type"]).toBe("StorageValidationError");
    await provider.shutdown();
  });
});
