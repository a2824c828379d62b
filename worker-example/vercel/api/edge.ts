import { neon } from "@neondatabase/serverless";
import { webhookCallback } from "grammy";
import { createBot, type BotConfig } from "../../src/bot.js";
import { storagesFor } from "../../src/storage.js";

/**
 * The example bot as a Vercel Edge Function: Neon over HTTP (no connection to
 * keep), the bot at module scope so warm instances reuse it.
 */
export const config = { runtime: "edge" };

const env = process.env as unknown as BotConfig & { WEBHOOK_SECRET: string; DATABASE_URL: string };
const bot = createBot(env, storagesFor(neon(env.DATABASE_URL), env.SESSION_TABLE));
const handleUpdate = webhookCallback(bot, "std/http", { secretToken: env.WEBHOOK_SECRET });

/** Telegram's webhook: POST /api/edge. */
export default function handler(request: Request): Promise<Response> {
  return handleUpdate(request);
}
