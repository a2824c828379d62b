import { webhookCallback } from "grammy";
import pg from "pg";
import { createBot, type BotConfig } from "./bot.js";
import { storagesFor } from "./storage.js";

/** Bindings of the Hyperdrive variant. */
export interface HyperdriveEnv extends BotConfig {
  readonly WEBHOOK_SECRET: string;
  /** Cloudflare's connection pooler in front of any Postgres. */
  readonly HYPERDRIVE: Hyperdrive;
}

/**
 * The same bot with `pg` through a Hyperdrive binding: Hyperdrive pools the
 * connections, so the Worker opens a client per request and ends it after the
 * response without delaying it.
 */
export default {
  async fetch(request: Request, env: HyperdriveEnv, ctx: ExecutionContext): Promise<Response> {
    if (!env.WEBHOOK_SECRET) return new Response("WEBHOOK_SECRET is not set", { status: 500 });
    if (request.method !== "POST") return new Response("Telegram sends updates with POST", { status: 405 });
    const client = new pg.Client({ connectionString: env.HYPERDRIVE.connectionString });
    // A connection lost between statements is reported here; the statement then fails and the storage says so.
    client.on("error", (error) => console.error("database connection lost:", error.message));
    await client.connect();
    try {
      const bot = createBot(env, storagesFor(client, env.SESSION_TABLE, env.STORAGE_LOG === "1"));
      return await webhookCallback(bot, "cloudflare-mod", { secretToken: env.WEBHOOK_SECRET })(request);
    } finally {
      ctx.waitUntil(client.end());
    }
  },
} satisfies ExportedHandler<HyperdriveEnv>;
