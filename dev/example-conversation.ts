// Real @grammyjs/conversations state for the compression test and benchmark: the example
// bot's /feedback conversation, and a conversation that collects answers in a loop, whose
// state grows with every answer (the plugin keeps a log of every update it waited for, and
// of every Bot API call, and replays it). Shared by test/compressed-codec.test.ts and
// bench/compression.ts.
import {
  type Conversation,
  type ConversationData,
  type ConversationFlavor,
  conversations,
  createConversation,
  type VersionedState,
} from "@grammyjs/conversations";
import { Bot, type Context } from "grammy";
import { type Codec, PostgresStorage, prefixKeys, type PostgresClient } from "../src/index.ts";
import { createBot, type BotContext } from "../worker-example/src/bot.ts";
import { FormSession } from "../worker-example/src/session.ts";
import type { BotStorages } from "../worker-example/src/storage.ts";
import { botInfo, textMessage } from "./telegram.ts";

/** The example bot on `client`, its conversations stored with `codec` (the form sessions with the default). */
export function exampleBot(options: {
  client: PostgresClient;
  tableName: string;
  apiRoot: string;
  codec?: Codec | undefined;
}): { bot: Bot<BotContext>; storages: BotStorages } {
  const { client, tableName, codec } = options;
  const storages: BotStorages = {
    sessions: new PostgresStorage({ client, tableName, schema: FormSession, keyBuilder: prefixKeys("form") }),
    conversations: new PostgresStorage<VersionedState<ConversationData>>({
      client,
      tableName,
      keyBuilder: prefixKeys("conversation"),
      ...(codec === undefined ? {} : { codec }),
    }),
  };
  const config = { BOT_TOKEN: "123:offline", BOT_INFO: JSON.stringify(botInfo), BOT_API_ROOT: options.apiRoot };
  return { bot: createBot(config, storages), storages };
}

/**
 * A bot whose /list conversation collects one item per message until "done",
 * replying to each: its state holds every update it waited for and every reply,
 * so it grows by each step, as the conversations users report do.
 */
export function listBot(options: {
  client: PostgresClient;
  tableName: string;
  apiRoot: string;
  codec?: Codec | undefined;
}): Bot<ConversationFlavor<Context>> {
  const bot = new Bot<ConversationFlavor<Context>>("123:offline", { botInfo, client: { apiRoot: options.apiRoot } });
  const storage = new PostgresStorage<VersionedState<ConversationData>>({
    client: options.client,
    tableName: options.tableName,
    ...(options.codec === undefined ? {} : { codec: options.codec }),
  });
  bot.use(conversations({ storage }));
  bot.use(
    createConversation(async (conversation: Conversation<ConversationFlavor<Context>, Context>, ctx: Context) => {
      await ctx.reply("Send the items of your list, one per message, and done at the end.");
      const items: string[] = [];
      for (;;) {
        const item = await conversation.form.text();
        if (item === "done") break;
        items.push(item);
        await ctx.reply(`Item ${items.length}: ${item}. Next one, or done?`);
      }
      await ctx.reply(`Your list has ${items.length} items: ${items.join(", ")}.`);
    }, "list"),
  );
  bot.command("list", (ctx) => ctx.conversation.enter("list"));
  return bot;
}

/** The texts of a /list conversation `steps` updates long, still waiting: the command, then items. */
export function listTexts(steps: number): string[] {
  const items = ["tea", "milk", "oat biscuits", "strawberry jam", "two lemons", "bread", "butter", "eggs"];
  return ["/list", ...Array.from({ length: Math.max(0, steps - 1) }, (_, i) => items[i % items.length] as string)];
}

/**
 * The texts of a /feedback conversation that waits `steps` updates: the command,
 * what the user likes, then `steps - 2` ratings the bot refuses ("Please send a
 * whole number from 1 to 5."), each of which the conversation keeps in its log.
 * Send `"5"` after them to finish it.
 */
export function feedbackTexts(steps: number): string[] {
  const refused = ["six", "10", "five stars", "0", "a lot", "-1", "4.5", "maybe later"];
  return [
    "/feedback",
    "The forms, and that it remembers where I was after a restart.",
    ...Array.from({ length: Math.max(0, steps - 2) }, (_, i) => refused[i % refused.length] as string),
  ];
}

/** Sends each text to the bot as a message from `chatId`, one update after the other. */
export async function chat<C extends Context>(bot: Bot<C>, chatId: number, texts: readonly string[]): Promise<void> {
  for (const text of texts) await bot.handleUpdate(textMessage(chatId, text));
}
