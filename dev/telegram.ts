// The bot's own user and Telegram updates, as the tests, the benchmarks and npm run dev hand them to a bot.
import type { Update, UserFromGetMe } from "grammy/types";

/** The bot's own user, fixed so that `Bot` never calls getMe. */
export const botInfo: UserFromGetMe = {
  id: 777000,
  is_bot: true,
  first_name: "Test Bot",
  username: "test_bot",
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: false,
  can_connect_to_business: false,
  has_main_web_app: false,
  has_topics_enabled: false,
  allows_users_to_create_topics: false,
  can_manage_bots: false,
  supports_join_request_queries: false,
};

let updateId = 0;

/** A text message from a user in a private chat (chat id = user id), as Telegram sends it. */
export function textMessage(chatId: number, text: string, userId = chatId): Update {
  updateId += 1;
  const isCommand = text.startsWith("/");
  return {
    update_id: updateId,
    message: {
      message_id: updateId,
      date: Math.floor(Date.now() / 1000),
      chat:
        chatId > 0
          ? { id: chatId, type: "private", first_name: `User ${userId}` }
          : { id: chatId, type: "supergroup", title: "Group" },
      from: { id: userId, is_bot: false, first_name: `User ${userId}` },
      text,
      ...(isCommand
        ? { entities: [{ type: "bot_command" as const, offset: 0, length: text.split(" ")[0]?.length ?? 0 }] }
        : {}),
    },
  };
}
