import { attachDatabasePool } from "@vercel/functions";
import { webhookCallback } from "grammy";
import pg from "pg";
import { createBot, type BotConfig } from "../../src/bot.js";
import { storagesFor } from "../../src/storage.js";

/**
 * The example bot as a Vercel Function on the Node runtime (Fluid compute): one
 * Pool per instance, shared by every request it serves, and registered with
 * attachDatabasePool so idle clients are closed before the instance is
 * suspended. Use Neon's pooled connection string.
 */
const env = process.env as unknown as BotConfig & { WEBHOOK_SECRET: string; DATABASE_URL: string };
export const pool = new pg.Pool({ connectionString: env.DATABASE_URL, idleTimeoutMillis: 5_000 });
pool.on("error", (error) => console.error("idle database client failed", error));
attachDatabasePool(pool);

const bot = createBot(env, storagesFor(pool, env.SESSION_TABLE));
const handleUpdate = webhookCallback(bot, "std/http", { secretToken: env.WEBHOOK_SECRET });

/** Telegram's webhook: POST /api/node. */
export function POST(request: Request): Promise<Response> {
  return handleUpdate(request);
}
