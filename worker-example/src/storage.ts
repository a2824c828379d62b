import type { ConversationData, VersionedState } from "@grammyjs/conversations";
import { PostgresStorage, prefixKeys, type PostgresClient } from "grammy-postgres-storage";
import { FormSession } from "./session.js";

const THIRTY_DAYS = 30 * 24 * 60 * 60 * 1000;

/** Both storages of the bot, in one table: form sessions and waiting conversations. */
export interface BotStorages {
  readonly sessions: PostgresStorage<FormSession>;
  readonly conversations: PostgresStorage<VersionedState<ConversationData>>;
}

/**
 * The bot's storages on any client: neon() on Workers, pg through Hyperdrive,
 * a Pool on Vercel. Creating them sends nothing; the table is created by the
 * first write that finds it missing.
 */
export function storagesFor(client: PostgresClient, tableName?: string): BotStorages {
  const shared = { client, tableName, millisecondsToLive: THIRTY_DAYS };
  return {
    sessions: new PostgresStorage({ ...shared, schema: FormSession, keyBuilder: prefixKeys("form") }),
    conversations: new PostgresStorage({ ...shared, keyBuilder: prefixKeys("conversation") }),
  };
}
