import { Bot, BotError, session, type Context, type SessionFlavor } from "grammy";
import { describe, expect, it } from "vitest";
import { botInfo, textMessage } from "../dev/telegram.js";
import { PostgresStorage, type PostgresStorageOptions, type StorageEvent } from "../src/index.js";
import { rewindExpiries, useFixture, useIsolates } from "./support/fixture.js";

type Session = Record<string, unknown>;

const TTL = 60_000;
const CHAT = 805;
const KEY = String(CHAT);

// The first updates of a chat with no session, handled at once: update 1 reads no row, and while its handler runs
// (held at a gate the test opens) other updates create the row and change it, each acknowledged when its
// handleUpdate resolved. Update 1 then changes grammY's initial() object in place, and grammY writes it back: it must
// be merged onto the row, not replace it.
describe("the first updates of a new chat, handled at once, keep each other's changes", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();

  /** A promise and the function that resolves it: a handler waits on it while the test acts. */
  const gate = () => {
    let open = () => {};
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { opened, open };
  };

  /** The session as a storage that never saw the key reads it: `undefined` when the row is expired or gone. */
  const fresh = (tableName: string) => new PostgresStorage<Session>({ client: db.pool, tableName }).read(KEY);

  /**
   * An isolate: a storage on a pool of its own, how each of its write() calls was applied (or the error it failed
   * with), and a grammY bot on it whose message "<field>" sets that field of ctx.session in place, after awaiting
   * `before[field]` when there is one.
   */
  const newIsolate = (tableName: string, options: Partial<PostgresStorageOptions<Session>>) => {
    const writes: (string | undefined)[] = [];
    const storage = new PostgresStorage<Session>({
      client: isolate(),
      tableName,
      ...options,
      onEvent: (event: StorageEvent) => {
        if (event.kind === "operation" && event.operation === "write") writes.push(event.write ?? event.error);
      },
    });
    const before: Record<string, () => Promise<void>> = {};
    const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
    bot.use(session({ initial: () => ({}), storage }));
    bot.on("message:text", async (ctx) => {
      const field = ctx.message.text;
      await before[field]?.();
      ctx.session[field] = true;
    });
    return { storage, writes, before, bot };
  };
  type Isolate = ReturnType<typeof newIsolate>;

  /** What the chat held before its first update of the test: its reads find no row all the same. */
  const histories: {
    chat: string;
    options: Partial<PostgresStorageOptions<Session>>;
    prepare(x: Isolate, tableName: string): Promise<void>;
  }[] = [
    { chat: "a chat with no session yet", options: {}, prepare: async () => {} },
    {
      chat: "a chat whose session expired",
      options: { millisecondsToLive: TTL },
      prepare: async (x, tableName) => {
        await x.bot.handleUpdate(textMessage(CHAT, "old"));
        await rewindExpiries(db.admin, tableName, TTL + 30_000); // expired 30 s ago, not pruned
      },
    },
    {
      chat: "a chat whose session was deleted",
      options: {},
      prepare: async (x) => {
        await x.bot.handleUpdate(textMessage(CHAT, "old"));
        await x.storage.delete(KEY);
      },
    },
  ];

  /**
   * Update 1 of isolate X reads no row and its handler waits; meanwhile isolate Y's update sets `y`, then X's update 2
   * sets `x2`, both acknowledged; then update 1 sets `x1` in its initial() object and is written back. With `single`,
   * Y is X: three updates at once in one storage. With `update`, update 1's handler also calls update() of `u`,
   * before it waits or after.
   */
  const firstUpdates = async (
    history: (typeof histories)[number],
    { onConflict, single, update }: { onConflict: "ours" | "throw"; single: boolean; update?: "before" | "after" },
  ) => {
    const tableName = db.table(`new_chat_${onConflict}`);
    const x = newIsolate(tableName, { ...history.options, onConflict });
    const y = single ? x : newIsolate(tableName, { ...history.options, onConflict });
    await history.prepare(x, tableName);
    expect(await fresh(tableName)).toBeUndefined();
    x.writes.length = 0;
    const reached = gate();
    const released = gate();
    x.before.x1 = async () => {
      if (update === "before") await x.storage.update(KEY, { u: true });
      reached.open();
      await released.opened;
      if (update === "after") await x.storage.update(KEY, { u: true });
    };
    // grammY wraps a failed write-back in a BotError: its error is the storage's.
    const first = x.bot.handleUpdate(textMessage(CHAT, "x1")).then(
      () => undefined,
      (failure: unknown) => (failure instanceof BotError ? failure.error : failure),
    );
    await reached.opened; // update 1 has read the chat: no row
    await y.bot.handleUpdate(textMessage(CHAT, "y"));
    await x.bot.handleUpdate(textMessage(CHAT, "x2"));
    released.open();
    const error = await first;
    return { error, writes: single ? { x: x.writes } : { x: x.writes, y: y.writes }, session: await fresh(tableName) };
  };

  describe.each(histories.map((history) => [history.chat, history] as const))("%s", (_, history) => {
    describe.each([
      ["two isolates: update 1 and 2 in one, the other update in another", false],
      ["one isolate: the three updates at once in one storage", true],
    ] as const)("%s", (__, single) => {
      it.each(["ours", "throw"] as const)(
        'onConflict "%s": update 1\'s change is merged, and the two updates acknowledged meanwhile keep theirs',
        async (onConflict) => {
          expect(await firstUpdates(history, { onConflict, single })).toStrictEqual({
            error: undefined,
            writes: single ? { x: ["set", "set", "merged"] } : { x: ["set", "merged"], y: ["set"] },
            session: { x1: true, y: true, x2: true },
          });
        },
      );

      // In one isolate, an update() before the others ran was kept before this was fixed too: its row is what the
      // others read, so their reads agreed.
      const updates = single ? (["after"] as const) : (["before", "after"] as const);
      it.each(updates.flatMap((when) => (["ours", "throw"] as const).map((onConflict) => [onConflict, when] as const)))(
        'onConflict "%s": a field update 1\'s handler set with update() %s the others ran stays too',
        async (onConflict, update) => {
          expect(await firstUpdates(history, { onConflict, single, update })).toStrictEqual({
            error: undefined,
            writes: single ? { x: ["set", "set", "merged"] } : { x: ["set", "merged"], y: ["set"] },
            session: { u: true, x1: true, y: true, x2: true },
          });
        },
      );
    });
  });
});
