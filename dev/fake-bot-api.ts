// A fake Telegram Bot API on loopback that records what the bot calls, for the tests and npm run dev.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** One call the bot made to the Bot API. */
export interface BotApiCall {
  readonly method: string;
  readonly payload: Record<string, unknown>;
}

/** A local stand-in for Telegram's Bot API that records what the bot calls. */
export interface FakeBotApi {
  /** Pass as grammY's `client.apiRoot`. */
  readonly apiRoot: string;
  /** Every call, in order. */
  readonly calls: BotApiCall[];
  /** The texts sent to one chat (sendMessage), in order. */
  textsTo(chatId: number): string[];
  stop(): Promise<void>;
}

/**
 * Starts the fake on 127.0.0.1. Every method succeeds; `sendMessage` and
 * `editMessageText` answer with a message built from the request, everything
 * else with `true`. `onCall` sees each call as it arrives (the dev stack prints
 * the bot's replies from it).
 */
export async function startFakeBotApi(
  options: { port?: number; onCall?: (call: BotApiCall) => void } = {},
): Promise<FakeBotApi> {
  const calls: BotApiCall[] = [];
  let messageId = 1000;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const method = (request.url ?? "").split("/").pop() ?? "";
      const text = Buffer.concat(chunks).toString("utf8");
      const payload = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
      const call = { method, payload };
      calls.push(call);
      options.onCall?.(call);
      const result =
        method === "sendMessage" || method === "editMessageText"
          ? {
              message_id: (messageId += 1),
              date: Math.floor(Date.now() / 1000),
              chat: { id: payload.chat_id, type: Number(payload.chat_id) > 0 ? "private" : "supergroup" },
              text: payload.text,
            }
          : true;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ ok: true, result }));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiRoot: `http://127.0.0.1:${port}`,
    calls,
    textsTo: (chatId) =>
      calls
        .filter((call) => call.method === "sendMessage" && Number(call.payload.chat_id) === chatId)
        .map((call) => String(call.payload.text)),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
