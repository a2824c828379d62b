import { PostgresStorageError } from "./errors.ts";

/**
 * Whose state a session key names, as in aiogram's FSM strategies:
 * - `"chat"`: one session per chat, shared by everyone in it (grammY's default)
 * - `"user"`: one session per user, across all chats
 * - `"user-in-chat"`: one session per user in each chat
 * - `"chat-topic"`: one session per forum topic (per chat outside forums)
 * - `"user-in-topic"`: one session per user in each forum topic
 */
export type SessionKeyStrategy = "chat" | "user" | "user-in-chat" | "chat-topic" | "user-in-topic";

// Every strategy once, as a record so that the compiler notices one missing here.
const STRATEGIES: Readonly<Record<SessionKeyStrategy, true>> = {
  chat: true,
  user: true,
  "user-in-chat": true,
  "chat-topic": true,
  "user-in-topic": true,
};

/** Options of {@link sessionKey}. */
export interface SessionKeyOptions {
  /** Start every key with the bot's id, so that several bots can share one table. */
  withBotId?: boolean | undefined;
  /** Keep the state of each Telegram Business connection apart from the bot's own chats. */
  withBusinessConnection?: boolean | undefined;
}

/** The parts of grammY's `Context` a session key is made from. */
export interface SessionKeyContext {
  /** The chat the update belongs to (grammY's `ctx.chatId`). */
  readonly chatId?: number | undefined;
  /** The user the update comes from. */
  readonly from?: { readonly id: number } | undefined;
  /** The message, whose topic (`message_thread_id` when `is_topic_message`) the topic strategies use. */
  readonly msg?: { readonly message_thread_id?: number | undefined; readonly is_topic_message?: boolean | undefined } | undefined;
  /** The bot itself, for `withBotId`. */
  readonly me?: { readonly id: number } | undefined;
  /** The Telegram Business connection the update came through, for `withBusinessConnection`. */
  readonly businessConnectionId?: string | undefined;
}

/**
 * A ready `getSessionKey` for grammY's `session()`, by strategy:
 *
 * ```ts
 * bot.use(session({ initial, storage, getSessionKey: sessionKey("user-in-chat", { withBotId: true }) }));
 * ```
 *
 * Keys are ids joined by `:` (`"<bot>:business:<id>:<chat>:<topic>:<user>"`,
 * each part only where the strategy and options ask for it). When an id the
 * strategy needs is missing (no chat in an inline query, say), it returns
 * `undefined`, so grammY leaves the session alone; it never makes a key
 * containing "undefined".
 */
export function sessionKey(strategy: SessionKeyStrategy, options: SessionKeyOptions = {}): (ctx: SessionKeyContext) => string | undefined {
  const needsChat = strategy !== "user";
  const needsUser = strategy === "user" || strategy === "user-in-chat" || strategy === "user-in-topic";
  const byTopic = strategy === "chat-topic" || strategy === "user-in-topic";
  if (!Object.hasOwn(STRATEGIES, strategy)) {
    throw new PostgresStorageError(`sessionKey: unknown strategy ${JSON.stringify(strategy)}; use one of ${Object.keys(STRATEGIES).join(", ")}`);
  }
  return (ctx) => {
    const parts: (string | number)[] = [];
    if (options.withBotId) {
      if (ctx.me?.id === undefined) return undefined;
      parts.push(ctx.me.id);
    }
    if (options.withBusinessConnection && ctx.businessConnectionId !== undefined) {
      parts.push("business", ctx.businessConnectionId);
    }
    if (needsChat) {
      if (ctx.chatId === undefined) return undefined;
      parts.push(ctx.chatId);
      // Outside forum topics (including a forum's General topic) there is no
      // thread, and the chat itself is the unit, as in aiogram.
      const thread = ctx.msg?.is_topic_message ? ctx.msg.message_thread_id : undefined;
      if (byTopic && thread !== undefined) parts.push(thread);
    }
    if (needsUser) {
      if (ctx.from?.id === undefined) return undefined;
      parts.push(ctx.from.id);
    }
    return parts.join(":");
  };
}
