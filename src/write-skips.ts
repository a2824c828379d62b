/** What a read found, as {@link WriteSkips.observeRead} needs to know it (the read may answer more). */
export interface ReadOutcome {
  /** The stored text, or `undefined` when there is no row. */
  readonly text: string | undefined;
  /**
   * For how long, counted from when the read was sent, writing this text back
   * could be skipped as far as the row's expiry goes: `Infinity` when the
   * expiry needs no renewing, 0 or less when it must be written anyway.
   */
  readonly skippableMs: number;
}

/** Bounds and clock of a {@link WriteSkips}. */
export interface WriteSkipsOptions {
  /** How many keys to remember at most; the least recently used are forgotten first. Defaults to 1000. */
  readonly maxKeys?: number | undefined;
  /** How many characters of text to hold at most. Defaults to 8 million. */
  readonly maxChars?: number | undefined;
  /** How long after a read was sent its value may be written back without a statement. Defaults to 5 s. */
  readonly windowMs?: number | undefined;
  /** The clock, in milliseconds; `performance.now` unless a test drives time. */
  readonly now?: (() => number) | undefined;
}

/** What is remembered of one key after an operation that had the key to itself. */
interface Known {
  /** The text the database held when the operation ended. */
  readonly text: string;
  /** Until when a write of exactly this text may be skipped; 0 when it may not (it was written, not read, or the skip is used up). */
  armedUntil: number;
}

/** Operations of one key in flight. */
interface Flight {
  /** How many are in flight. */
  active: number;
  /** Whether another started while one was in flight, since the key last had none: then none had it to itself. */
  overlapped: boolean;
}

/**
 * Decides when `write()` may skip its statement, and owns everything that
 * decision rests on. grammY writes every session back after an update that
 * touched it, changed or not; skipping the write-back of an unchanged session
 * makes a read-only update one statement instead of two. The rule, which
 * holds with any number of processes writing the same keys:
 *
 * - Only a read arms a skip, and only a read that had its key to itself: no
 *   other operation of the key was in flight when it started or started
 *   before it ended. (Answers can arrive in another order than their
 *   statements committed, so an overlapped read proves nothing.)
 * - The next write of the key takes the skip, whatever it writes, and skips
 *   its statement only if it writes exactly the text read, within `windowMs`
 *   of sending the read (and before the row's expiry needs renewing).
 * - Every other operation of the key disarms it when it starts: a delete, an
 *   update, another read.
 * - What a write stored is remembered only as a guess for `update()`'s
 *   compare-and-set, never to skip a later write: another process may have
 *   changed or deleted the row since, and the write must then land.
 *
 * So a write that resolves without a statement is always grammY's write-back
 * of the value this process read moments earlier, unchanged, with nothing
 * else of this process touching the key in between. Forgetting is always
 * safe: it only costs a statement. Memory is bounded by keys and characters.
 */
export class WriteSkips {
  readonly #known = new Map<string, Known>();
  readonly #flights = new Map<string, Flight>();
  readonly #maxKeys: number;
  readonly #maxChars: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #chars = 0;

  /** @param options the bounds and the clock */
  constructor(options: WriteSkipsOptions = {}) {
    // Enough to span the read and write-back of every update a process handles at once.
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#maxChars = options.maxChars ?? 8_000_000;
    // grammY writes a session back when its handler returns; handlers take well
    // under this. A write-back after a slower handler is simply written.
    this.#windowMs = options.windowMs ?? 5_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Runs a read of `key`; if it succeeds and nothing else of the key
   * overlapped it, the text it found arms one skip. `run` should include
   * decoding the text, so that a value the caller refuses arms nothing.
   *
   * @returns what `run` answered
   */
  async observeRead<R extends ReadOutcome>(key: string, run: () => Promise<R>): Promise<R> {
    const sentAt = this.#now();
    this.#begin(key);
    let outcome: R | undefined;
    try {
      outcome = await run();
      return outcome;
    } finally {
      const text = outcome?.text;
      if (this.#end(key) && text !== undefined) {
        this.#remember(key, { text, armedUntil: sentAt + Math.min(this.#windowMs, outcome?.skippableMs ?? 0) });
      }
    }
  }

  /**
   * Runs a write, delete or update of `key`. If nothing else of the key
   * overlapped it, the text it left in the database is kept as a guess for
   * {@link guess}; it never arms a skip.
   *
   * @param run resolves to (at least) the text the database holds afterwards, `undefined` when there is no row
   * @returns what `run` answered
   */
  async observeWrite<R extends { readonly text: string | undefined }>(key: string, run: () => Promise<R>): Promise<R> {
    this.#begin(key);
    let outcome: R | undefined;
    try {
      outcome = await run();
      return outcome;
    } finally {
      const text = outcome?.text;
      if (this.#end(key) && text !== undefined) this.#remember(key, { text, armedUntil: 0 });
    }
  }

  /**
   * Takes the skip armed for `key`, if any: the text a write may leave
   * unsent. Call it when a write starts, before anything else it does (such
   * as encoding, which may fail): the skip is used up either way, so only the
   * write that comes next can use it.
   */
  takeSkip(key: string): string | undefined {
    const known = this.#known.get(key);
    if (known === undefined || known.armedUntil === 0) return undefined;
    const armed = this.#now() < known.armedUntil;
    known.armedUntil = 0;
    return armed ? known.text : undefined;
  }

  /**
   * The text the database held under `key` after the last operation that had
   * the key to itself: a guess for a compare-and-set, which checks it.
   * (Nothing is remembered of a key while an operation of it is in flight.)
   */
  guess(key: string): string | undefined {
    return this.#known.get(key)?.text;
  }

  /** Counts an operation of `key` in flight and forgets what was known. */
  #begin(key: string): void {
    this.#forget(key);
    const flight = this.#flights.get(key);
    if (flight === undefined) {
      this.#flights.set(key, { active: 1, overlapped: false });
    } else {
      flight.active += 1;
      flight.overlapped = true;
    }
  }

  /** Ends an operation of `key`; answers whether it had the key to itself from start to end. */
  #end(key: string): boolean {
    // #begin of this operation made or joined the flight, and only the flight's last #end removes it.
    const flight = this.#flights.get(key) as Flight;
    flight.active -= 1;
    if (flight.active > 0) return false;
    this.#flights.delete(key);
    return !flight.overlapped;
  }

  #forget(key: string): void {
    const known = this.#known.get(key);
    if (known === undefined) return;
    this.#known.delete(key);
    this.#chars -= known.text.length;
  }

  #remember(key: string, known: Known): void {
    this.#forget(key);
    if (known.text.length > this.#maxChars) return;
    // Insertion order is recency order: the oldest entries go first.
    this.#known.set(key, known);
    this.#chars += known.text.length;
    for (const oldKey of this.#known.keys()) {
      if (this.#known.size <= this.#maxKeys && this.#chars <= this.#maxChars) return;
      this.#forget(oldKey);
    }
  }
}
