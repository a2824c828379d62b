import type { ConversationData, VersionedState } from "@grammyjs/conversations";
import { PostgresStorage, prefixKeys, type PostgresClient, type StorageEvent } from "grammy-postgres-storage";
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
 * first write that finds it missing. With `log`, each operation is logged.
 */
export function storagesFor(client: PostgresClient, tableName?: string, log = false): BotStorages {
  // One JSON line per operation, as Workers Logs index them (keys left out: they are user ids).
  const onEvent = log
    ? (event: StorageEvent) => event.kind === "operation" && console.log(JSON.stringify(event))
    : undefined;
  const shared = { client, tableName, millisecondsToLive: THIRTY_DAYS, onEvent };
  return {
    sessions: new PostgresStorage({ ...shared, schema: FormSession, keyBuilder: prefixKeys("form") }),
    conversations: new PostgresStorage({ ...shared, keyBuilder: prefixKeys("conversation") }),
  };
}
