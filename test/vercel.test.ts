import { neonConfig } from "@neondatabase/serverless";
import ws from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { startNeonEndpoint, useNeonEndpoint, type NeonConfigLike, type NeonEndpoint } from "../dev/neon-endpoint.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import { adminPool, databaseUrl, uniqueTable } from "./support/clients.js";

const SECRET = "vercel-test-secret";

// The Vercel functions are plain Web handlers: called here with a Request,
// exactly as Vercel's runtimes call them.
describe("Vercel function examples", () => {
  const { admin, close } = adminPool();
  const table = uniqueTable("vercel");
  let api: FakeBotApi;
  let endpoint: NeonEndpoint;
  let edge: (request: Request) => Promise<Response>;
  let node: { POST(request: Request): Promise<Response>; pool: { end(): Promise<void> } };

  beforeAll(async () => {
    api = await startFakeBotApi();
    endpoint = await startNeonEndpoint();
    useNeonEndpoint(neonConfig as NeonConfigLike, endpoint, ws);
    Object.assign(process.env, {
      BOT_TOKEN: "123:vercel",
      BOT_INFO: JSON.stringify(botInfo),
      BOT_API_ROOT: api.apiRoot,
      WEBHOOK_SECRET: SECRET,
      DATABASE_URL: databaseUrl(),
      SESSION_TABLE: table,
    });
    edge = (await import("../worker-example/vercel/api/edge.js")).default;
    node = await import("../worker-example/vercel/api/node.js");
  });
  afterAll(async () => {
    await node?.pool.end();
    await endpoint.stop();
    await api.stop();
    await admin(`DROP TABLE IF EXISTS "${table}"`);
    await close();
  });

  const post = (text: string, chat: number, secret: string | null = SECRET) =>
    new Request("https://example.vercel.app/api", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(secret === null ? {} : { "x-telegram-bot-api-secret-token": secret }),
      },
      body: JSON.stringify(textMessage(chat, text)),
    });

  it.each([
    ["edge runtime, neon() over HTTP", 3001, () => edge],
    ["Node runtime, module-scope pg Pool", 3002, () => node.POST],
  ] as const)("%s: runs the form and stores its state", async (_label, chat, handler) => {
    for (const text of ["/form", "Ada", "36", "yes", "/me"])
      expect((await handler()(post(text, chat))).status).toBe(200);
    expect(api.textsTo(chat).at(-1)).toBe("Name: Ada, age: 36 (confirmed).");
    const [row] = await admin(`SELECT value::text AS value FROM "${table}" WHERE key = $1`, [`form:${chat}`]);
    expect(JSON.parse(String(row?.value))).toStrictEqual({ step: "idle", name: "Ada", age: 36, confirmed: true });
    expect((await handler()(post("/reset", chat, null))).status).toBe(401);
    expect((await handler()(post("/reset", chat, "wrong"))).status).toBe(401);
    expect(await admin(`SELECT count(*)::int AS n FROM "${table}" WHERE key = $1`, [`form:${chat}`])).toStrictEqual([
      { n: 1 },
    ]);
  });
});
