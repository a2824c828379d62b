import { PsqlAdapter } from "@grammyjs/storage-psql";
import { Postgres as TelegrafPostgres } from "@telegraf/session/pg";
import {
  Bot,
  lazySession,
  session,
  type Context,
  type LazySessionFlavor,
  type SessionFlavor,
  type StorageAdapter,
} from "grammy";
import type pg from "pg";
import { botInfo, textMessage } from "../dev/telegram.js";
import { PostgresStorage } from "../src/index.js";

/** The session every benchmark bot keeps. */
export interface Counter {
  count: number;
}

export const OURS = "grammy-postgres-storage";
export const PSQL = "@grammyjs/storage-psql";
export const TELEGRAF = "@telegraf/session/pg";

/** Builds a session storage on a pg-style pool, as a bot would at start-up (storage-psql's constructor runs its DDL). */
export type Factory = (pool: pg.Pool, table: string) => Promise<StorageAdapter<Counter>>;

/** This library and its two peers, each as a grammY StorageAdapter. */
export const factories: [name: string, create: Factory][] = [
  [OURS, async (pool, table) => new PostgresStorage<Counter>({ client: pool, tableName: table })],
  // storage-psql types its client as pg's Client but only calls query(), which a Pool has.
  [
    PSQL,
    async (pool, table) =>
      (await PsqlAdapter.create({ client: pool as unknown as pg.Client, tableName: table })) as StorageAdapter<Counter>,
  ],
  [
    TELEGRAF,
    async (pool, table) => {
      const store = TelegrafPostgres<Counter>({ pool, table });
      return {
        read: (key) => store.get(key),
        write: async (key, value) => void (await store.set(key, value)),
        delete: async (key) => void (await store.delete(key)),
      };
    },
  ],
];

/** The kinds of update measured: what the handler does with the session. */
export const UPDATE_KINDS = ["read-only", "modifying", "lazySession untouched"] as const;
export type UpdateKind = (typeof UPDATE_KINDS)[number];

export interface Bots {
  /** `session()`: /count changes the session, /peek only reads it. */
  readonly eager: Bot<Context & SessionFlavor<Counter>>;
  /** `lazySession()`: /ping never touches the session. */
  readonly lazy: Bot<Context & LazySessionFlavor<Counter>>;
  /** Hands one update of a kind, from a private chat, to the bot that handles it. */
  handle(kind: UpdateKind, chat: number): Promise<void>;
}

/**
 * The same bot for every adapter. No handler replies, and `botInfo` is fixed
 * so that `Bot` never calls getMe: no Bot API is involved, only the storage.
 */
export function bots(storage: StorageAdapter<Counter>): Bots {
  const eager = new Bot<Context & SessionFlavor<Counter>>("1:bench", { botInfo });
  eager.use(session({ initial: () => ({ count: 0 }), storage }));
  eager.command("count", (ctx) => void (ctx.session.count += 1));
  eager.command("peek", (ctx) => void ctx.session.count);
  const lazy = new Bot<Context & LazySessionFlavor<Counter>>("1:bench", { botInfo });
  lazy.use(lazySession({ initial: () => ({ count: 0 }), storage }));
  lazy.command("ping", () => {});
  return {
    eager,
    lazy,
    handle: (kind, chat) =>
      kind === "lazySession untouched"
        ? lazy.handleUpdate(textMessage(chat, "/ping"))
        : eager.handleUpdate(textMessage(chat, kind === "read-only" ? "/peek" : "/count")),
  };
}
