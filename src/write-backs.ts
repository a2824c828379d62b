/**
 * Which writes are write-backs, and what each builds on. grammY's session
 * reads a session, runs the handler, and writes the session back; the write
 * is applied as the change from what was read (see `write-back.ts`), so it
 * must find what was read. grammY passes back the very object the read
 * returned unless the handler replaced it, so each returned object is
 * remembered with its base (exact, even with many updates of one key at
 * once). A replaced object, a primitive session, or grammY's `initial()`
 * after a read found nothing falls back to the key's last read, where that is
 * sound: while every read of the key not yet written back saw the same text,
 * and this storage has not written, deleted or updated the key since (then a
 * write of a new object is a plain write, as code that reads a key and later
 * writes it anew expects). After a read that found no row, an `update()` is no
 * such write: grammY writes `initial()`'s object back, which applies its change
 * onto the update.
 */

/** What a write-back builds on: the row as this storage last saw it, and the session as it then was. */
export interface Base {
  /** The stored key. */
  readonly key: string;
  /** The row's stored text, or `null` when there was no row. */
  readonly stored: string | null;
  /**
   * The plain codec's text of the session as the read handed it out (see `ReadSession.seen`: the stored text unless the codec
   * encrypts or compresses, or a schema shapes it); `null` when the read handed none out (no row, or one `onInvalid`
   * discards).
   */
  readonly plain: string | null;
  /**
   * Until when (on {@link WriteBacksOptions.now}'s clock) writing the session
   * back unchanged needs no statement as far as the row's expiry goes.
   */
  readonly quietUntil: number;
  /**
   * The stored plain text, when the codec read it with another secret than the one it writes with: written back
   * unchanged, it is stored again under that one.
   */
  readonly resealFrom?: string | undefined;
  /** The plain text of the session `onInvalid` repaired at the read (`plain` is then the stored one): a merge's base. */
  readonly repaired?: string | undefined;
  /** Whether the row holds a merge of this session with another writer's change, not this session alone. */
  readonly merged?: boolean | undefined;
  /**
   * The fields this storage's `update()`s set after the read found no row: a write-back of grammY's `initial()` object
   * holds initial values of them, which are no change of the handler's.
   */
  readonly updatedFields?: readonly string[] | undefined;
}

/** What is known of one key. */
interface KeyState {
  /** The base of the key's last read, for writes whose value is not a returned object. */
  base: Base | undefined;
  /** Reads of the key not yet written back. */
  open: number;
  /** Whether open reads saw different texts: then no write of the key falls back to `base`. */
  ambiguous: boolean;
  /** Whether this storage wrote, deleted or updated the key since its last read: then no write falls back either. */
  touched: boolean;
  /** The fields this storage's `update()`s set since the key's last read found no row (see {@link Base.updatedFields}). */
  updatedFields: string[] | undefined;
  /** The plain text of the row those `update()`s left. */
  updatedPlain: string | undefined;
  /**
   * The base of the last read of the key that handed out no session, while reads are open: what grammY's `initial()`
   * object builds on when the key's reads disagree (merged onto the row, it keeps what others stored since).
   */
  empty: Base | undefined;
  /** When `empty` was read. */
  emptyAt: number;
  /** When `base` was read. */
  readAt: number;
  /** The text the row held after this storage's last operation of the key; `null`: no row. A guess, checked by compare-and-set. */
  latest: string | null | undefined;
}

/** Bounds and clock of {@link WriteBacks}. */
export interface WriteBacksOptions {
  /** How many keys to remember at most; the least recently used are forgotten first. Defaults to 1000. */
  readonly maxKeys?: number | undefined;
  /** Stored texts longer than this are not kept as guesses. Defaults to 1 million characters. */
  readonly maxGuessChars?: number | undefined;
  /** How long after a read a write of another object of its key still counts as its write-back. Defaults to 60 s. */
  readonly fallbackMs?: number | undefined;
  /** The clock, in milliseconds; `performance.now` unless a test drives time. */
  readonly now?: (() => number) | undefined;
}

/**
 * The bases of write-backs. Memory is bounded: objects are remembered weakly
 * (a base lives as long as the session object it belongs to), keys up to
 * `maxKeys`. Forgetting is always safe: a write without a base replaces the
 * value, as any direct `write()` does.
 */
export class WriteBacks {
  readonly #byObject = new WeakMap<object, Base>();
  readonly #keys = new Map<string, KeyState>();
  readonly #maxKeys: number;
  readonly #maxGuessChars: number;
  readonly #fallbackMs: number;
  /** The clock. */
  readonly now: () => number;

  /** @param options the bounds and the clock */
  constructor(options: WriteBacksOptions = {}) {
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#maxGuessChars = options.maxGuessChars ?? 1_000_000;
    // Handlers that call slow APIs take seconds; a write a minute after a read is no write-back of it.
    this.#fallbackMs = options.fallbackMs ?? 60_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Records a read: `value` is what it returned (`undefined` for no row), `base` what a write-back of it builds on. */
  read(base: Base, value: unknown): void {
    if (typeof value === "object" && value !== null) this.#byObject.set(value, base);
    const state = this.#state(base.key);
    const now = this.now();
    // Plain texts are compared too: a codec that encrypts stores one session under many texts.
    const updatedRow = base.stored === state.latest || base.plain === state.updatedPlain;
    if (state.updatedFields !== undefined && state.open > 0 && updatedRow) {
      // The row this storage's own update() left, after a read that found none: the write-back of that read's
      // initial() object still builds on it (the object this read returned has its own base).
      state.open += 1;
      return;
    }
    if (state.open > 0 && now - state.readAt < this.#fallbackMs) {
      if (state.base?.plain !== base.plain) state.ambiguous = true;
      state.open += 1;
    } else {
      state.open = 1;
      state.ambiguous = false;
      // Fields an update() set after a read that found no row belong to that read's initial() object, while it is open.
      state.empty = state.updatedFields = state.updatedPlain = undefined;
    }
    // A session too large to keep twice in memory is written back as a plain write.
    // (One text, when the plain text is the stored one, is kept once.)
    const chars = (base.stored?.length ?? 0) + (base.plain === base.stored ? 0 : (base.plain?.length ?? 0));
    state.base = chars > this.#maxGuessChars ? undefined : base;
    if (state.base?.plain === null) {
      state.empty = state.base;
      state.emptyAt = now;
    }
    state.readAt = now;
    state.touched = false;
    this.#saw(state, base.stored);
  }

  /**
   * The base a write of `value` under `key` builds on, if it is a write-back:
   * the base of the very object a read returned, or else the key's last read
   * while that is sound. Call it when the write starts: it counts one open read of the key as written back.
   */
  take(key: string, value: unknown): Base | undefined {
    const own = typeof value === "object" && value !== null ? this.#byObject.get(value) : undefined;
    if (own !== undefined && own.key !== key) return undefined;
    const state = this.#keys.get(key);
    if (state === undefined || state.open === 0) return own;
    state.open -= 1;
    const { base, empty, updatedFields } = state;
    // With no read open, the key's bases serve nothing more: let their texts go.
    if (state.open === 0) state.base = state.empty = undefined;
    if (own !== undefined) return own;
    const now = this.now();
    let fallback: Base | undefined;
    if (!(state.ambiguous || state.touched || now - state.readAt >= this.#fallbackMs)) fallback = base;
    // Reads disagree, but one that found no row is open: this is most likely grammY's initial() object of that read,
    // and merged onto the row with no base it keeps what others stored since, which a replace would drop.
    else if (empty !== undefined && now - state.emptyAt < this.#fallbackMs) fallback = empty;
    return fallback === undefined || updatedFields === undefined ? fallback : { ...fallback, updatedFields };
  }

  /**
   * After a write-back of `value` applied, or found nothing to apply to the row as it is: a further write of the same
   * object builds on the row it left.
   */
  wrote(value: unknown, base: Base): void {
    if (typeof value === "object" && value !== null) this.#byObject.set(value, base);
    this.#saw(this.#state(base.key), base.stored);
  }

  /** Records what the row of `key` held after this storage wrote or deleted it: `null` for no row. */
  saw(key: string, stored: string | null): void {
    const state = this.#state(key);
    state.touched = true;
    this.#saw(state, stored);
  }

  /**
   * Records what the row of `key` held after an `update()` that set `fields` in it (`plain`: its plain text). After a
   * read that handed out no session, a write of a new object (grammY's `initial()`) still builds on that read, and
   * applies its change onto the update; otherwise, as after a write, it replaces the row.
   */
  updated(key: string, stored: string, plain: string, fields: readonly string[]): void {
    const state = this.#state(key);
    // While a read that found no row is open, even beside reads of rows, its initial() object keeps the update.
    if (state.open > 0 && state.empty !== undefined) {
      (state.updatedFields ??= []).push(...fields);
      state.updatedPlain = plain;
    }
    if (!(state.open > 0 && state.base?.plain === null)) state.touched = true;
    this.#saw(state, stored);
  }

  /** What the row of `key` held after this storage's last operation of it, as far as it knows: a guess to compare-and-set against. */
  latest(key: string): string | null | undefined {
    return this.#keys.get(key)?.latest;
  }

  #saw(state: KeyState, stored: string | null): void {
    state.latest = stored !== null && stored.length > this.#maxGuessChars ? undefined : stored;
  }

  /** The state of `key`, made most recently used; the least recently used keys beyond the bound are forgotten. */
  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (state !== undefined) {
      this.#keys.delete(key);
    } else {
      state = {
        base: undefined,
        open: 0,
        ambiguous: false,
        touched: false,
        updatedFields: undefined,
        updatedPlain: undefined,
        empty: undefined,
        emptyAt: 0,
        readAt: 0,
        latest: undefined,
      };
    }
    this.#keys.set(key, state);
    if (this.#keys.size > this.#maxKeys) {
      const oldest = this.#keys.keys().next();
      if (!oldest.done) this.#keys.delete(oldest.value);
    }
    return state;
  }
}
