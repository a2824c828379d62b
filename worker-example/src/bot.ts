import { conversations, createConversation, type Conversation, type ConversationFlavor } from "@grammyjs/conversations";
import { Bot, session, type Context, type SessionFlavor } from "grammy";
import type { UserFromGetMe } from "grammy/types";
import { initialSession, type FormSession } from "./session.js";
import type { BotStorages } from "./storage.js";

/** The bot's context: a typed session and the conversations plugin. */
export type BotContext = ConversationFlavor<Context & SessionFlavor<FormSession>>;

/** What every deployment of the bot (Workers, Hyperdrive, Vercel) provides. */
export interface BotConfig {
  /** The token from @BotFather. */
  readonly BOT_TOKEN: string;
  /** The bot's getMe result as JSON, so no request spends a round trip on it. */
  readonly BOT_INFO: string;
  /** Where the Bot API is; only set for local development. */
  readonly BOT_API_ROOT?: string | undefined;
  /** The table for sessions and conversations; defaults to `grammy_sessions`. */
  readonly SESSION_TABLE?: string | undefined;
  /** "1": log one JSON line per storage operation (Workers Logs, `wrangler tail`). */
  readonly STORAGE_LOG?: string | undefined;
}

const HELP =
  "Send /form to fill in the form, /me to see what is stored, /reset to delete it, /feedback for a short conversation.";

/** A message that starts with a command for this bot: "/me", or "/me@this_bot" in a group. */
function isCommand(ctx: Context): boolean {
  const message = ctx.message;
  const entity = message?.entities?.find(({ offset }) => offset === 0);
  if (message?.text === undefined || entity?.type !== "bot_command") return false;
  const addressee = message.text.slice(0, entity.length).split("@")[1];
  return addressee === undefined || addressee.toLowerCase() === ctx.me.username.toLowerCase();
}

/**
 * Deletes the session: grammY deletes the row when it is set to `null`. Through
 * SessionFlavor itself, whose setter takes `null`; the conversations flavor's
 * copy of the context type keeps only the getter's type.
 */
function deleteSession(ctx: SessionFlavor<FormSession>): void {
  ctx.session = null;
}

/** What /me answers: the confirmed answers, and the form being filled in, if any. */
function summary({ step, name, age, confirmed, draft }: FormSession): string {
  const lines: string[] = [];
  if (confirmed && name !== undefined) lines.push(`Name: ${name}, age: ${age ?? "?"} (confirmed).`);
  if (step !== "idle" && draft?.name !== undefined) {
    lines.push(
      `Name: ${draft.name}, age: ${draft.age ?? "?"} (being filled in, waiting for ${step === "confirm" ? "confirmation" : `the ${step}`}).`,
    );
  }
  return lines.length > 0 ? lines.join("\n") : "Nothing stored yet. Send /form.";
}

/** A short conversation; commands never reach it (see the filter before it in createBot). */
async function feedback(conversation: Conversation<BotContext, Context>, ctx: Context): Promise<void> {
  await ctx.reply("What do you like about this bot?");
  const liked = await conversation.form.text();
  await ctx.reply("And from 1 to 5, how would you rate it?");
  const answer = await conversation.waitUntil((reply) => /^[1-5]$/.test(reply.msg?.text?.trim() ?? ""), {
    otherwise: (reply) => reply.reply("Please send a whole number from 1 to 5."),
  });
  const stars = Number(answer.msg?.text?.trim());
  await ctx.reply(`Thanks! You liked "${liked}" and gave ${"★".repeat(stars)}${"☆".repeat(5 - stars)}.`);
}

/** Creates the bot for one request; nothing here costs a query until an update needs one. */
export function createBot(config: BotConfig, storages: BotStorages): Bot<BotContext> {
  const bot = new Bot<BotContext>(config.BOT_TOKEN, {
    botInfo: JSON.parse(config.BOT_INFO) as UserFromGetMe,
    ...(config.BOT_API_ROOT ? { client: { apiRoot: config.BOT_API_ROOT } } : {}),
  });
  bot.use(conversations({ storage: storages.conversations }));
  // A command leaves any conversation (installed before the conversations, so
  // they never see it) and goes on to its handler below, as outside one.
  bot.filter(isCommand, async (ctx, next) => {
    await ctx.conversation.exitAll();
    await next();
  });
  bot.use(createConversation(feedback, "feedback"));
  bot.use(session({ initial: initialSession, storage: storages.sessions }));

  bot.command("start", (ctx) => ctx.reply(`Hello! ${HELP}`));
  bot.command("form", (ctx) => {
    // The confirmed answers stay until new ones are confirmed.
    ctx.session = { ...ctx.session, step: "name", draft: {} };
    return ctx.reply("What is your name?");
  });
  bot.command("me", (ctx) => ctx.reply(summary(ctx.session)));
  bot.command("reset", (ctx) => {
    deleteSession(ctx);
    return ctx.reply("Deleted everything stored about you.");
  });
  bot.command("feedback", (ctx) => ctx.conversation.enter("feedback"));

  bot.on("message:text", async (ctx) => {
    if (isCommand(ctx)) return ctx.reply(HELP); // a command the bot does not know is no answer to the form
    const text = ctx.msg.text.trim();
    const form = ctx.session;
    const draft = form.draft ?? {};
    switch (form.step) {
      case "name":
        if (text.length === 0 || text.length > 64) return ctx.reply("Please send a name of 1 to 64 characters.");
        ctx.session = { ...form, step: "age", draft: { name: text } };
        return ctx.reply(`Nice to meet you, ${text}. How old are you?`);
      case "age": {
        const age = Number(text);
        if (!Number.isInteger(age) || age < 1 || age > 150)
          return ctx.reply("Please send your age as a whole number from 1 to 150.");
        ctx.session = { ...form, step: "confirm", draft: { ...draft, age } };
        return ctx.reply(`${draft.name}, ${age}. Is that right? (yes/no)`);
      }
      case "confirm": {
        const { name, age } = draft;
        if (/^y(es)?$/i.test(text) && name !== undefined && age !== undefined) {
          ctx.session = { step: "idle", name, age, confirmed: true }; // replaces the answers confirmed before
          return ctx.reply("Saved. Send /me to see it.");
        }
        if (/^no?$/i.test(text) || name === undefined || age === undefined) {
          ctx.session = { ...form, step: "name", draft: {} }; // the confirmed answers stay
          return ctx.reply("Let's start again. What is your name?");
        }
        return ctx.reply("Please answer yes or no.");
      }
      case "idle":
        return ctx.reply(HELP);
    }
  });
  return bot;
}
