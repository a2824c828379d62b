import { Api, Context } from "grammy";
import type { Update, UserFromGetMe } from "grammy/types";
import { describe, expect, it } from "vitest";
import { sessionKey, type SessionKeyStrategy } from "../../src/index.js";
import { optionError } from "../support/refusals.js";

const me: UserFromGetMe = {
  id: 777,
  is_bot: true,
  first_name: "Test Bot",
  username: "test_bot",
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: true,
  can_connect_to_business: true,
  has_main_web_app: false,
  has_topics_enabled: false,
  allows_users_to_create_topics: false,
  can_manage_bots: false,
  supports_join_request_queries: false,
};
const user = { id: 42, is_bot: false, first_name: "Ada" };
const group = { id: -100123, type: "supergroup" as const, title: "Group" };
const forum = { id: -100456, type: "supergroup" as const, title: "Forum", is_forum: true as const };
const channel = { id: -100789, type: "channel" as const, title: "News" };
// The placeholder users Telegram puts in `from` of messages sent on behalf of a chat.
const channelBot = { id: 136817688, is_bot: true, first_name: "Channel", username: "Channel_Bot" };
const groupAnonymousBot = { id: 1087968824, is_bot: true, first_name: "Group", username: "GroupAnonymousBot" };
const telegram = { id: 777000, is_bot: false, first_name: "Telegram" };

// Update shapes as the Bot API sends them.
const updates: Record<string, Update> = {
  "private chat": {
    update_id: 1,
    message: { message_id: 1, date: 0, chat: { id: 42, type: "private", first_name: "Ada" }, from: user, text: "hi" },
  },
  group: { update_id: 2, message: { message_id: 2, date: 0, chat: group, from: user, text: "hi" } },
  "group reply thread (not a topic)": {
    update_id: 3,
    message: { message_id: 3, date: 0, chat: group, from: user, text: "re", message_thread_id: 2 },
  },
  "forum topic": {
    update_id: 4,
    message: {
      message_id: 4,
      date: 0,
      chat: forum,
      from: user,
      text: "hi",
      message_thread_id: 99,
      is_topic_message: true,
    },
  },
  "forum General topic": { update_id: 5, message: { message_id: 5, date: 0, chat: forum, from: user, text: "hi" } },
  "business message": {
    update_id: 6,
    business_message: {
      message_id: 6,
      date: 0,
      chat: { id: 55, type: "private", first_name: "Client" },
      from: { id: 55, is_bot: false, first_name: "Client" },
      text: "hi",
      business_connection_id: "BC1",
    },
  },
  "callback query in a topic": {
    update_id: 7,
    callback_query: {
      id: "cq",
      from: user,
      chat_instance: "ci",
      data: "x",
      message: {
        message_id: 8,
        date: 0,
        chat: forum,
        from: { id: 777, is_bot: true, first_name: "Test Bot" },
        text: "menu",
        message_thread_id: 99,
        is_topic_message: true,
      },
    },
  },
  "inline query (no chat)": { update_id: 8, inline_query: { id: "iq", from: user, query: "q", offset: "" } },
  // Sent on behalf of a chat: `from` is a placeholder (or absent), `sender_chat` says who.
  "channel post (no from)": {
    update_id: 9,
    channel_post: { message_id: 9, date: 0, chat: channel, sender_chat: channel, text: "news" },
  },
  "edited channel post (no from)": {
    update_id: 10,
    edited_channel_post: { message_id: 9, date: 0, edit_date: 1, chat: channel, sender_chat: channel, text: "news!" },
  },
  "message as a channel in a group": {
    update_id: 11,
    message: { message_id: 11, date: 0, chat: group, from: channelBot, sender_chat: channel, text: "hi" },
  },
  "anonymous group admin": {
    update_id: 12,
    message: {
      message_id: 12,
      date: 0,
      chat: group,
      from: groupAnonymousBot,
      sender_chat: group,
      author_signature: "Owner",
      text: "hi",
    },
  },
  "anonymous admin in a forum topic": {
    update_id: 13,
    message: {
      message_id: 13,
      date: 0,
      chat: forum,
      from: groupAnonymousBot,
      sender_chat: forum,
      text: "hi",
      message_thread_id: 99,
      is_topic_message: true,
    },
  },
  "automatic forward from the linked channel": {
    update_id: 14,
    message: {
      message_id: 14,
      date: 0,
      chat: group,
      from: telegram,
      sender_chat: channel,
      is_automatic_forward: true,
      forward_origin: { type: "channel", date: 0, chat: channel, message_id: 9 },
      text: "news",
    },
  },
  "callback query under a channel post": {
    update_id: 15,
    callback_query: {
      id: "cq2",
      from: user,
      chat_instance: "ci",
      data: "x",
      message: { message_id: 9, date: 0, chat: channel, sender_chat: channel, text: "vote" },
    },
  },
  "anonymous reaction (actor chat, no user)": {
    update_id: 16,
    message_reaction: {
      chat: group,
      message_id: 2,
      actor_chat: group,
      date: 0,
      old_reaction: [],
      new_reaction: [{ type: "emoji", emoji: "👍" }],
    },
  },
  "reaction of a user": {
    update_id: 17,
    message_reaction: {
      chat: group,
      message_id: 2,
      user,
      date: 0,
      old_reaction: [],
      new_reaction: [{ type: "emoji", emoji: "👍" }],
    },
  },
  "poll answer on behalf of a chat": {
    update_id: 18,
    poll_answer: { poll_id: "p", voter_chat: channel, option_ids: [0], option_persistent_ids: ["a"] },
  },
};

type Keys = Record<SessionKeyStrategy, string | undefined>;
// Without a sender chat, `senderChat: true` changes nothing: `withSenderChat` is given where it does.
// A channel post has no user: no key for the strategies that need one, unless the channel counts as the user.
const channelPostKeys = {
  keys: {
    chat: "-100789",
    user: undefined,
    "user-in-chat": undefined,
    "chat-topic": "-100789",
    "user-in-topic": undefined,
  },
  withSenderChat: {
    chat: "-100789",
    user: "-100789",
    "user-in-chat": "-100789:-100789",
    "chat-topic": "-100789",
    "user-in-topic": "-100789:-100789",
  },
};

const expected: Record<string, { keys: Keys; withSenderChat?: Keys }> = {
  "private chat": {
    keys: { chat: "42", user: "42", "user-in-chat": "42:42", "chat-topic": "42", "user-in-topic": "42:42" },
  },
  group: {
    keys: {
      chat: "-100123",
      user: "42",
      "user-in-chat": "-100123:42",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:42",
    },
  },
  "group reply thread (not a topic)": {
    keys: {
      chat: "-100123",
      user: "42",
      "user-in-chat": "-100123:42",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:42",
    },
  },
  "forum topic": {
    keys: {
      chat: "-100456",
      user: "42",
      "user-in-chat": "-100456:42",
      "chat-topic": "-100456:99",
      "user-in-topic": "-100456:99:42",
    },
  },
  "forum General topic": {
    keys: {
      chat: "-100456",
      user: "42",
      "user-in-chat": "-100456:42",
      "chat-topic": "-100456",
      "user-in-topic": "-100456:42",
    },
  },
  "business message": {
    keys: { chat: "55", user: "55", "user-in-chat": "55:55", "chat-topic": "55", "user-in-topic": "55:55" },
  },
  "callback query in a topic": {
    keys: {
      chat: "-100456",
      user: "42",
      "user-in-chat": "-100456:42",
      "chat-topic": "-100456:99",
      "user-in-topic": "-100456:99:42",
    },
  },
  "inline query (no chat)": {
    keys: {
      chat: undefined,
      user: "42",
      "user-in-chat": undefined,
      "chat-topic": undefined,
      "user-in-topic": undefined,
    },
  },
  "channel post (no from)": channelPostKeys,
  "edited channel post (no from)": channelPostKeys,
  "message as a channel in a group": {
    keys: {
      chat: "-100123",
      user: "136817688",
      "user-in-chat": "-100123:136817688",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:136817688",
    },
    withSenderChat: {
      chat: "-100123",
      user: "-100789",
      "user-in-chat": "-100123:-100789",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:-100789",
    },
  },
  "anonymous group admin": {
    keys: {
      chat: "-100123",
      user: "1087968824",
      "user-in-chat": "-100123:1087968824",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:1087968824",
    },
    withSenderChat: {
      chat: "-100123",
      user: "-100123",
      "user-in-chat": "-100123:-100123",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:-100123",
    },
  },
  "anonymous admin in a forum topic": {
    keys: {
      chat: "-100456",
      user: "1087968824",
      "user-in-chat": "-100456:1087968824",
      "chat-topic": "-100456:99",
      "user-in-topic": "-100456:99:1087968824",
    },
    withSenderChat: {
      chat: "-100456",
      user: "-100456",
      "user-in-chat": "-100456:-100456",
      "chat-topic": "-100456:99",
      "user-in-topic": "-100456:99:-100456",
    },
  },
  "automatic forward from the linked channel": {
    keys: {
      chat: "-100123",
      user: "777000",
      "user-in-chat": "-100123:777000",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:777000",
    },
    withSenderChat: {
      chat: "-100123",
      user: "-100789",
      "user-in-chat": "-100123:-100789",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:-100789",
    },
  },
  // The one who pressed the button, not who sent the message it hangs under.
  "callback query under a channel post": {
    keys: {
      chat: "-100789",
      user: "42",
      "user-in-chat": "-100789:42",
      "chat-topic": "-100789",
      "user-in-topic": "-100789:42",
    },
  },
  "anonymous reaction (actor chat, no user)": {
    keys: {
      chat: "-100123",
      user: undefined,
      "user-in-chat": undefined,
      "chat-topic": "-100123",
      "user-in-topic": undefined,
    },
    withSenderChat: {
      chat: "-100123",
      user: "-100123",
      "user-in-chat": "-100123:-100123",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:-100123",
    },
  },
  "reaction of a user": {
    keys: {
      chat: "-100123",
      user: "42",
      "user-in-chat": "-100123:42",
      "chat-topic": "-100123",
      "user-in-topic": "-100123:42",
    },
  },
  // grammY finds no chat in a poll answer (ctx.chatId is undefined).
  "poll answer on behalf of a chat": {
    keys: {
      chat: undefined,
      user: undefined,
      "user-in-chat": undefined,
      "chat-topic": undefined,
      "user-in-topic": undefined,
    },
    withSenderChat: {
      chat: undefined,
      user: "-100789",
      "user-in-chat": undefined,
      "chat-topic": undefined,
      "user-in-topic": undefined,
    },
  },
};

const contextOf = (update: Update) => new Context(update, new Api("0:offline"), me);
// Every strategy, as a record so that the compiler notices one missing here.
const everyStrategy = {
  chat: true,
  user: true,
  "user-in-chat": true,
  "chat-topic": true,
  "user-in-topic": true,
} satisfies Record<SessionKeyStrategy, true>;
const strategies = Object.keys(everyStrategy) as SessionKeyStrategy[];

describe("sessionKey", () => {
  it("has an expectation for every update shape", () => {
    expect(Object.keys(expected).sort()).toStrictEqual(Object.keys(updates).sort());
  });

  for (const [shape, update] of Object.entries(updates)) {
    it.each(strategies)(`${shape}: %s`, (strategy) => {
      const ctx = contextOf(update);
      const key = sessionKey(strategy)(ctx);
      expect(key).toBe(expected[shape]?.keys[strategy]);
      const withBot = sessionKey(strategy, { withBotId: true })(ctx);
      expect(withBot).toBe(key === undefined ? undefined : `777:${key}`);
      expect(sessionKey(strategy, { senderChat: false })(ctx)).toBe(key);
      const bySender = sessionKey(strategy, { senderChat: true })(ctx);
      expect(bySender).toBe((expected[shape]?.withSenderChat ?? expected[shape]?.keys)?.[strategy]);
      const bySenderWithBot = sessionKey(strategy, { senderChat: true, withBotId: true })(ctx);
      expect(bySenderWithBot).toBe(bySender === undefined ? undefined : `777:${bySender}`);
      for (const made of [key, withBot, bySender, bySenderWithBot]) expect(made ?? "").not.toContain("undefined");
    });
  }

  it("gives every chat writing in a group its own session, apart from the users and from each other", () => {
    const inGroup = (update: Update) => sessionKey("user-in-chat", { senderChat: true })(contextOf(update));
    const keys = ["group", "message as a channel in a group", "anonymous group admin"].map((shape) =>
      inGroup(updates[shape] as Update),
    );
    expect(new Set(keys).size).toBe(keys.length);
    // A channel's automatic forward into its discussion group is the channel writing there.
    expect(inGroup(updates["automatic forward from the linked channel"] as Update)).toBe(
      inGroup(updates["message as a channel in a group"] as Update),
    );
    // Without the option, everyone who writes as a channel shares @Channel_Bot's session.
    const otherChannel: Update = {
      update_id: 19,
      message: {
        message_id: 19,
        date: 0,
        chat: group,
        from: channelBot,
        sender_chat: { id: -100999, type: "channel", title: "Other" },
        text: "hi",
      },
    };
    const plain = sessionKey("user-in-chat");
    expect(plain(contextOf(otherChannel))).toBe(plain(contextOf(updates["message as a channel in a group"] as Update)));
    expect(inGroup(otherChannel)).toBe("-100123:-100999");
  });

  it("reads the sender chat from grammY's context as grammY exposes it", () => {
    const ctx = contextOf(updates["anonymous group admin"] as Update);
    expect(ctx.senderChat?.id).toBe(-100123);
    expect(ctx.from?.id).toBe(1087968824);
  });

  it("keeps business connections apart when asked", () => {
    const ctx = contextOf(updates["business message"] as Update);
    expect(sessionKey("chat", { withBusinessConnection: true })(ctx)).toBe("business:BC1:55");
    expect(sessionKey("user-in-chat", { withBotId: true, withBusinessConnection: true })(ctx)).toBe(
      "777:business:BC1:55:55",
    );
    const plain = contextOf(updates.group as Update);
    expect(sessionKey("chat", { withBusinessConnection: true })(plain)).toBe("-100123");
  });

  it("gives two bots sharing a table different keys for the same chat", () => {
    const update = updates.group as Update;
    const other = new Context(update, new Api("0:offline"), { ...me, id: 888 });
    expect(sessionKey("chat", { withBotId: true })(contextOf(update))).not.toBe(
      sessionKey("chat", { withBotId: true })(other),
    );
  });

  it("refuses an unknown strategy, naming the option and every strategy there is", () => {
    for (const strategy of ["global", "Chat", "toString", "", undefined]) {
      const error = optionError(() => sessionKey(strategy as SessionKeyStrategy));
      expect(error.option).toBe("strategy");
      expect(error.message).toBe(
        `sessionKey: unknown strategy ${JSON.stringify(strategy)}; use one of ${strategies.join(", ")}`,
      );
    }
    expect(strategies.join(", ")).toBe("chat, user, user-in-chat, chat-topic, user-in-topic");
  });

  it("with withBotId, makes no key without the bot's id (a context made before bot.init())", () => {
    for (const strategy of strategies) {
      const key = sessionKey(strategy, { withBotId: true });
      expect(key({ chatId: -100123, from: { id: 42 } })).toBeUndefined();
      expect(key({ chatId: -100123, from: { id: 42 }, me: { id: 777 } })).toMatch(/^777:-?\d/);
    }
  });

  it("with senderChat, keys an anonymous poll answer on its chat, and a poll answer by a user on the user", () => {
    const user = sessionKey("user", { senderChat: true });
    expect(user({ pollAnswer: { voter_chat: { id: -100789 } } })).toBe("-100789");
    expect(user({ pollAnswer: {}, from: { id: 42 } })).toBe("42");
    expect(user({ messageReaction: {}, from: { id: 42 } })).toBe("42");
    expect(user({ msg: {}, from: { id: 42 } })).toBe("42");
  });
});
