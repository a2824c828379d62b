import { StorageOptionError } from "./errors.ts";

/**
 * Whose state a session key names, as in aiogram's FSM strategies:
 * - `"chat"`: one session per chat, shared by everyone in it (grammY's default)
 * - `"user"`: one session per user, across all chats
 * - `"user-in-chat"`: one session per user in each chat
 * - `"chat-topic"`: one session per forum topic (per chat outside forums)
 * - `"user-in-topic"`: one session per user in each forum topic
 */
export type SessionKeyStrategy = "chat" | "user" | "user-in-chat" | "chat-topic" | "user-in-topic";

// Every strategy once (test/unit/session-key.test.ts checks that none is missing).
const STRATEGIES: readonly string[] = [
  "chat",
  "user",
  "user-in-chat",
  "chat-topic",
  "user-in-topic",
] satisfies SessionKeyStrategy[];

/** Options of {@link sessionKey}. */
export interface SessionKeyOptions {
  /** Start every key with the bot's id, so that several bots can share one table. */
  withBotId?: boolean | undefined;
  /** Keep the state of each Telegram Business connection apart from the bot's own chats. */
  withBusinessConnection?: boolean | undefined;
  /**
   * Key on the chat an update was sent on behalf of, where there is one, in
   * place of the user: a message's `sender_chat` (a channel writing in a group,
   * an anonymous group admin, a channel's post or its automatic forward into
   * the discussion group), a reaction's `actor_chat`, a poll answer's
   * `voter_chat`. Such messages come `from` a placeholder user shared by
   * everyone (136817688 @Channel_Bot, 1087968824 @GroupAnonymousBot, 777000
   * Telegram), so without this option they all share that user's session.
   * Only the strategies that name a user change; chat ids are negative, so a
   * sender chat never takes a user's key. A callback query keeps the user who
   * pressed the button, whoever sent the message it is attached to.
   */
  senderChat?: boolean | undefined;
}

/** The parts of grammY's `Context` a session key is made from. */
export interface SessionKeyContext {
  /** The chat the update belongs to (grammY's `ctx.chatId`). */
  readonly chatId?: number | undefined;
  /** The user the update comes from. */
  readonly from?: { readonly id: number } | undefined;
  /**
   * The message, whose topic (`message_thread_id` when `is_topic_message`) the
   * topic strategies use, and whose `sender_chat` is the user with `senderChat`.
   */
  readonly msg?:
    | {
        readonly message_thread_id?: number | undefined;
        readonly is_topic_message?: boolean | undefined;
        readonly sender_chat?: { readonly id: number } | undefined;
      }
    | undefined;
  /** A callback query, whose `msg` is the message with the button: its `sender_chat` is not who pressed it. */
  readonly callbackQuery?: object | undefined;
  /** A reaction, whose `actor_chat` is the user with `senderChat` (an anonymous reaction has no `from`). */
  readonly messageReaction?: { readonly actor_chat?: { readonly id: number } | undefined } | undefined;
  /** A poll answer, whose `voter_chat` is the user with `senderChat` (an anonymous vote has no `from`). */
  readonly pollAnswer?: { readonly voter_chat?: { readonly id: number } | undefined } | undefined;
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
 * strategy needs is missing (no chat in an inline query, no user in a channel
 * post), it returns `undefined`, so grammY leaves the session alone; it never
 * makes a key containing "undefined". With `senderChat`, the user part is the
 * chat the update was sent on behalf of where there is one, so a channel post
 * (whose `sender_chat` is the channel) is keyed on the channel.
 */
export function sessionKey(
  strategy: SessionKeyStrategy,
  options: SessionKeyOptions = {},
): (ctx: SessionKeyContext) => string | undefined {
  const needsChat = strategy !== "user";
  const needsUser = strategy === "user" || strategy === "user-in-chat" || strategy === "user-in-topic";
  const byTopic = strategy === "chat-topic" || strategy === "user-in-topic";
  if (!STRATEGIES.includes(strategy)) {
    throw new StorageOptionError(
      "strategy",
      `sessionKey: unknown strategy ${JSON.stringify(strategy)}; use one of ${STRATEGIES.join(", ")}`,
    );
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
      const user = (options.senderChat ? senderChatId(ctx) : undefined) ?? ctx.from?.id;
      if (user === undefined) return undefined;
      parts.push(user);
    }
    return parts.join(":");
  };
}

/** The chat an update was sent on behalf of, if any (see {@link SessionKeyOptions.senderChat}). */
function senderChatId(ctx: SessionKeyContext): number | undefined {
  // A callback query's message is the one with the button (often the bot's own
  // post in a channel); the one acting is ctx.from, who pressed it.
  if (ctx.callbackQuery !== undefined) return undefined;
  return ctx.msg?.sender_chat?.id ?? ctx.messageReaction?.actor_chat?.id ?? ctx.pollAnswer?.voter_chat?.id;
}
