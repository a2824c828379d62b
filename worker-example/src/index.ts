import { neon, neonConfig } from "@neondatabase/serverless";
import { webhookCallback } from "grammy";
import { createBot, type BotConfig } from "./bot.js";
import { storagesFor } from "./storage.js";

/** Bindings: secrets (`wrangler secret put`) and, for local development, vars. */
export interface Env extends BotConfig {
  /** Telegram sends it in X-Telegram-Bot-Api-Secret-Token; set the same with setWebhook. */
  readonly WEBHOOK_SECRET: string;
  /** The Neon connection string. */
  readonly DATABASE_URL: string;
  /** Local development only: the local stand-in for Neon's HTTP endpoint. */
  readonly NEON_FETCH_ENDPOINT?: string;
}

/**
 * A grammY webhook bot on Cloudflare Workers, its state in Postgres through
 * Neon's HTTP driver: every storage operation is one HTTPS request, and there
 * is no connection to open or close.
 */
export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (!env.WEBHOOK_SECRET) return new Response("WEBHOOK_SECRET is not set", { status: 500 });
    if (request.method !== "POST") return new Response("Telegram sends updates with POST", { status: 405 });
    if (env.NEON_FETCH_ENDPOINT) neonConfig.fetchEndpoint = env.NEON_FETCH_ENDPOINT;
    const bot = createBot(env, storagesFor(neon(env.DATABASE_URL), env.SESSION_TABLE, env.STORAGE_LOG === "1"));
    return webhookCallback(bot, "cloudflare-mod", { secretToken: env.WEBHOOK_SECRET })(request);
  },

  /** A Cron Trigger (see wrangler.toml) deletes sessions that expired. */
  async scheduled(_controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    if (env.NEON_FETCH_ENDPOINT) neonConfig.fetchEndpoint = env.NEON_FETCH_ENDPOINT;
    const { sessions } = storagesFor(neon(env.DATABASE_URL), env.SESSION_TABLE, env.STORAGE_LOG === "1");
    ctx.waitUntil(sessions.prune().then((deleted) => console.log(`pruned ${deleted} expired rows`)));
  },
} satisfies ExportedHandler<Env>;
