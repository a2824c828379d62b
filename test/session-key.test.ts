import { Api, Context } from "grammy";
import type { Update, UserFromGetMe } from "grammy/types";
import { describe, expect, it } from "vitest";
import { sessionKey, type SessionKeyStrategy } from "../src/index.js";

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

// Update shapes as the Bot API sends them.
const updates: Record<string, Update> = {
  "private chat": { update_id: 1, message: { message_id: 1, date: 0, chat: { id: 42, type: "private", first_name: "Ada" }, from: user, text: "hi" } },
  group: { update_id: 2, message: { message_id: 2, date: 0, chat: group, from: user, text: "hi" } },
  "group reply thread (not a topic)": {
    update_id: 3,
    message: { message_id: 3, date: 0, chat: group, from: user, text: "re", message_thread_id: 2 },
  },
  "forum topic": {
    update_id: 4,
    message: { message_id: 4, date: 0, chat: forum, from: user, text: "hi", message_thread_id: 99, is_topic_message: true },
  },
  "forum General topic": { update_id: 5, message: { message_id: 5, date: 0, chat: forum, from: user, text: "hi" } },
  "business message": {
    update_id: 6,
    business_message: { message_id: 6, date: 0, chat: { id: 55, type: "private", first_name: "Client" }, from: { id: 55, is_bot: false, first_name: "Client" }, text: "hi", business_connection_id: "BC1" },
  },
  "callback query in a topic": {
    update_id: 7,
    callback_query: {
      id: "cq",
      from: user,
      chat_instance: "ci",
      data: "x",
      message: { message_id: 8, date: 0, chat: forum, from: { id: 777, is_bot: true, first_name: "Test Bot" }, text: "menu", message_thread_id: 99, is_topic_message: true },
    },
  },
  "inline query (no chat)": { update_id: 8, inline_query: { id: "iq", from: user, query: "q", offset: "" } },
};

const expected: Record<string, Record<SessionKeyStrategy, string | undefined>> = {
  "private chat": { chat: "42", user: "42", "user-in-chat": "42:42", "chat-topic": "42", "user-in-topic": "42:42" },
  group: { chat: "-100123", user: "42", "user-in-chat": "-100123:42", "chat-topic": "-100123", "user-in-topic": "-100123:42" },
  "group reply thread (not a topic)": { chat: "-100123", user: "42", "user-in-chat": "-100123:42", "chat-topic": "-100123", "user-in-topic": "-100123:42" },
  "forum topic": { chat: "-100456", user: "42", "user-in-chat": "-100456:42", "chat-topic": "-100456:99", "user-in-topic": "-100456:99:42" },
  "forum General topic": { chat: "-100456", user: "42", "user-in-chat": "-100456:42", "chat-topic": "-100456", "user-in-topic": "-100456:42" },
  "business message": { chat: "55", user: "55", "user-in-chat": "55:55", "chat-topic": "55", "user-in-topic": "55:55" },
  "callback query in a topic": { chat: "-100456", user: "42", "user-in-chat": "-100456:42", "chat-topic": "-100456:99", "user-in-topic": "-100456:99:42" },
  "inline query (no chat)": { chat: undefined, user: "42", "user-in-chat": undefined, "chat-topic": undefined, "user-in-topic": undefined },
};

const contextOf = (update: Update) => new Context(update, new Api("0:offline"), me);
const strategies: SessionKeyStrategy[] = ["chat", "user", "user-in-chat", "chat-topic", "user-in-topic"];

describe("sessionKey", () => {
  for (const [shape, update] of Object.entries(updates)) {
    it.each(strategies)(`${shape}: %s`, (strategy) => {
      const ctx = contextOf(update);
      const key = sessionKey(strategy)(ctx);
      expect(key).toBe(expected[shape]?.[strategy]);
      const withBot = sessionKey(strategy, { withBotId: true })(ctx);
      expect(withBot).toBe(key === undefined ? undefined : `777:${key}`);
      for (const made of [key, withBot]) expect(made ?? "").not.toContain("undefined");
    });
  }

  it("keeps business connections apart when asked", () => {
    const ctx = contextOf(updates["business message"] as Update);
    expect(sessionKey("chat", { withBusinessConnection: true })(ctx)).toBe("business:BC1:55");
    expect(sessionKey("user-in-chat", { withBotId: true, withBusinessConnection: true })(ctx)).toBe("777:business:BC1:55:55");
    const plain = contextOf(updates.group as Update);
    expect(sessionKey("chat", { withBusinessConnection: true })(plain)).toBe("-100123");
  });

  it("gives two bots sharing a table different keys for the same chat", () => {
    const update = updates.group as Update;
    const other = new Context(update, new Api("0:offline"), { ...me, id: 888 });
    expect(sessionKey("chat", { withBotId: true })(contextOf(update))).not.toBe(sessionKey("chat", { withBotId: true })(other));
  });

  it("refuses an unknown strategy", () => {
    expect(() => sessionKey("global" as SessionKeyStrategy)).toThrow(/unknown strategy/);
  });
});
