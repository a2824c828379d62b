import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_CHAT, startDevStack, type DevStack, type Variant } from "../scripts/dev-stack.js";
import { storagesFor } from "../worker-example/src/storage.js";
import { adminPool, databaseUrl, uniqueTable } from "./support/clients.js";

// The example worker in real workerd under `wrangler dev`, the local Neon
// endpoint (or Hyperdrive's local mode), the suite's PostgreSQL and a fake Bot API.
describe.each<Variant>(["neon", "hyperdrive"])("worker example (%s)", (variant) => {
  const { admin, close } = adminPool();
  const table = uniqueTable(`worker_${variant}`);
  let stack: DevStack;

  beforeAll(async () => {
    stack = await startDevStack({ databaseUrl: databaseUrl(), variant, sessionTable: table });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await admin(`DROP TABLE IF EXISTS "${table}"`);
    await close();
  });

  const chat = async (...texts: string[]) => {
    const replies: string[][] = [];
    for (const text of texts) {
      const exchange = await stack.send(text);
      expect(exchange.status).toBe(200);
      replies.push(exchange.replies);
    }
    return replies;
  };
  const storedRow = async () =>
    (await admin(`SELECT value::text AS value, expires_at FROM "${table}" WHERE key = $1`, [`form:${LOCAL_CHAT}`]))[0];

  it("walks through the form, validating the age, and answers /me from the database", async () => {
    expect(await chat("/start", "/form", "Ada", "abc", "36", "yes", "/me")).toStrictEqual([
      [
        "Hello! Send /form to fill in the form, /me to see what is stored, /reset to delete it, /feedback for a short conversation.",
      ],
      ["What is your name?"],
      ["Nice to meet you, Ada. How old are you?"],
      ["Please send your age as a whole number from 1 to 150."],
      ["Ada, 36. Is that right? (yes/no)"],
      ["Saved. Send /me to see it."],
      ["Name: Ada, age: 36 (confirmed)."],
    ]);
  });

  it("keeps the typed state in the row, readable through the same schema", async () => {
    const row = await storedRow();
    expect(JSON.parse(String(row?.value))).toStrictEqual({ step: "idle", name: "Ada", age: 36, confirmed: true });
    expect(row?.expires_at).toBeInstanceOf(Date);
    const pool = (await import("pg")).default.Pool;
    const client = new pool({ connectionString: databaseUrl(), max: 1 });
    try {
      expect(await storagesFor(client, table).sessions.read(String(LOCAL_CHAT))).toStrictEqual({
        step: "idle",
        name: "Ada",
        age: 36,
        confirmed: true,
      });
    } finally {
      await client.end();
    }
  });

  it("answers 401 to a request without the secret token, or with a wrong one, and changes nothing", async () => {
    const before = await storedRow();
    const calls = stack.api.calls.length;
    for (const secretToken of [null, "guess"]) {
      const exchange = await stack.send("/reset", { secretToken });
      expect(exchange.status).toBe(401);
    }
    expect(await storedRow()).toStrictEqual(before);
    expect(stack.api.calls.length).toBe(calls);
  });

  it("continues the form where it stopped after the worker restarts", async () => {
    expect(await chat("/form", "Grace")).toStrictEqual([
      ["What is your name?"],
      ["Nice to meet you, Grace. How old are you?"],
    ]);
    await stack.restartWorker();
    expect(await chat("41", "yes", "/me")).toStrictEqual([
      ["Grace, 41. Is that right? (yes/no)"],
      ["Saved. Send /me to see it."],
      ["Name: Grace, age: 41 (confirmed)."],
    ]);
  });

  it("keeps a conversation waiting between webhook calls, across a restart", async () => {
    expect(await chat("/feedback", "Quick answers")).toStrictEqual([
      ["What do you like about this bot?"],
      ["And from 1 to 5, how would you rate it?"],
    ]);
    await stack.restartWorker();
    expect(await chat("seven", "4")).toStrictEqual([
      ["Please send a whole number from 1 to 5."],
      ['Thanks! You liked "Quick answers" and gave ★★★★☆.'],
    ]);
  });

  const HELP =
    "Send /form to fill in the form, /me to see what is stored, /reset to delete it, /feedback for a short conversation.";
  const conversationRow = async () =>
    (await admin(`SELECT value::text AS value FROM "${table}" WHERE key = $1`, [`conversation:${LOCAL_CHAT}`]))[0];

  it("leaves the conversation for a command, which is then handled as a command", async () => {
    // /me while the conversation waits for the first answer, then for the rating.
    expect(await chat("/feedback", "/me", "Fast")).toStrictEqual([
      ["What do you like about this bot?"],
      ["Name: Grace, age: 41 (confirmed)."],
      [HELP],
    ]);
    expect(await chat("/feedback", "Fast")).toStrictEqual([
      ["What do you like about this bot?"],
      ["And from 1 to 5, how would you rate it?"],
    ]);
    expect(await conversationRow()).toBeDefined();
    expect(await chat("/me", "3")).toStrictEqual([["Name: Grace, age: 41 (confirmed)."], [HELP]]);
    expect(await conversationRow()).toBeUndefined();
    // /feedback starts it afresh, and a command the bot does not know leaves it too.
    expect(await chat("/feedback", "Fast", "/feedback", "Quick", "/nonsense", "4")).toStrictEqual([
      ["What do you like about this bot?"],
      ["And from 1 to 5, how would you rate it?"],
      ["What do you like about this bot?"],
      ["And from 1 to 5, how would you rate it?"],
      [HELP],
      [HELP],
    ]);
    // /reset inside it deletes the form's row, and nothing of the conversation is left.
    expect(await chat("/feedback", "/reset")).toStrictEqual([
      ["What do you like about this bot?"],
      ["Deleted everything stored about you."],
    ]);
    expect(await storedRow()).toBeUndefined();
    expect(await conversationRow()).toBeUndefined();
    expect(await chat("Slow", "/me")).toStrictEqual([[HELP], ["Nothing stored yet. Send /form."]]);
  });

  it("keeps the confirmed answers while a new form is filled in, and after a no, until new ones are confirmed", async () => {
    expect((await chat("/form", "Ada", "36", "yes")).at(-1)).toStrictEqual(["Saved. Send /me to see it."]);
    expect(await chat("/form", "/me", "Grace", "/me", "41", "/me", "no", "/me")).toStrictEqual([
      ["What is your name?"],
      ["Name: Ada, age: 36 (confirmed)."],
      ["Nice to meet you, Grace. How old are you?"],
      ["Name: Ada, age: 36 (confirmed).\nName: Grace, age: ? (being filled in, waiting for the age)."],
      ["Grace, 41. Is that right? (yes/no)"],
      ["Name: Ada, age: 36 (confirmed).\nName: Grace, age: 41 (being filled in, waiting for confirmation)."],
      ["Let's start again. What is your name?"],
      ["Name: Ada, age: 36 (confirmed)."],
    ]);
    expect(JSON.parse(String((await storedRow())?.value))).toStrictEqual({
      step: "name",
      name: "Ada",
      age: 36,
      confirmed: true,
      draft: {},
    });
    expect(await chat("Grace", "41", "yes", "/me")).toStrictEqual([
      ["Nice to meet you, Grace. How old are you?"],
      ["Grace, 41. Is that right? (yes/no)"],
      ["Saved. Send /me to see it."],
      ["Name: Grace, age: 41 (confirmed)."],
    ]);
    expect(JSON.parse(String((await storedRow())?.value))).toStrictEqual({
      step: "idle",
      name: "Grace",
      age: 41,
      confirmed: true,
    });
  });

  it("goes on with a form begun before the draft was kept apart (a row of the first version)", async () => {
    await admin(`UPDATE "${table}" SET value = $2 WHERE key = $1`, [
      `form:${LOCAL_CHAT}`,
      JSON.stringify({ step: "age", name: "Ada", confirmed: false }),
    ]);
    expect(await chat("/me", "36", "yes", "/me")).toStrictEqual([
      ["Name: Ada, age: ? (being filled in, waiting for the age)."],
      ["Ada, 36. Is that right? (yes/no)"],
      ["Saved. Send /me to see it."],
      ["Name: Ada, age: 36 (confirmed)."],
    ]);
  });

  it("deletes everything on /reset", async () => {
    expect(await chat("/reset")).toStrictEqual([["Deleted everything stored about you."]]);
    expect(await storedRow()).toBeUndefined();
    expect(await chat("/me")).toStrictEqual([["Nothing stored yet. Send /form."]]);
  });
});

describe("worker example with STORAGE_LOG=1", () => {
  const { admin, close } = adminPool();
  const table = uniqueTable("worker_log");
  let stack: DevStack;
  beforeAll(async () => {
    stack = await startDevStack({
      databaseUrl: databaseUrl(),
      sessionTable: table,
      storageLog: true,
      workerLogs: true,
    });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await admin(`DROP TABLE IF EXISTS "${table}"`);
    await close();
  });

  it("logs one JSON line per storage operation, without keys", async () => {
    const exchange = await stack.send("/me");
    expect(exchange.status).toBe(200);
    const events = exchange.logs.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
    expect(events.length).toBeGreaterThanOrEqual(2); // the session's read and the conversations' read
    for (const event of events) {
      expect(event).toMatchObject({ kind: "operation", table, outcome: "ok" });
      expect(event).not.toHaveProperty("key");
    }
  });
});
