/** What the storage last knew of one stored key. Ticks order every read and write this process makes. */
interface Entry {
  /** The text the database holds, or `undefined` when it is not known (or there is no row). */
  text: string | undefined;
  /** `performance.now()` after which the row's expiry should be renewed; `null`: the row never expires. */
  renewAt: number | null;
  /** Writes of this key in flight. */
  writers: number;
  /** The tick at which the latest write began. */
  changedAt: number;
  /** The tick at which the latest write ended. */
  settledAt: number;
  /** The tick at which the read that set `text` began. */
  seenAt: number;
}

/**
 * Remembers, per stored key, the text the database holds as far as this
 * process knows, so that grammY's write-back of an unchanged session can be
 * skipped. It only ever answers "unchanged" when it is sure: a read that
 * overlapped a write in any way, a read older than one already seen, a write
 * that overlapped another, or a failed write leaves the key unknown. Memory
 * is bounded by entry count and total text.
 */
export class LastKnownValues {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxChars: number;
  #chars = 0;
  #tick = 0;
  /** Reads that began at or before this tick may concern forgotten entries. */
  #forgottenAt = 0;

  /**
   * @param maxEntries how many keys to remember at most
   * @param maxChars how many characters of text to hold at most
   */
  constructor(maxEntries: number, maxChars: number) {
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  /** Call before a read is sent; pass the result to {@link endRead}. */
  beginRead(): number {
    return ++this.#tick;
  }

  /**
   * A read that began at `ticket` found `text` (`undefined`: no row), which
   * should be renewed after `renewAt`.
   */
  endRead(key: string, ticket: number, text: string | undefined, renewAt: number | null): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      if (ticket > this.#forgottenAt) this.#set(key, { text: undefined, renewAt: null, writers: 0, changedAt: 0, settledAt: 0, seenAt: ticket }, text, renewAt);
    } else if (entry.writers === 0 && ticket > entry.settledAt && ticket > entry.seenAt) {
      entry.seenAt = ticket;
      this.#set(key, entry, text, renewAt);
    }
  }

  /** Whether the database already holds `text` under `key`, with an expiry that need not be renewed yet. */
  holds(key: string, text: string, renewing: boolean): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.writers > 0 || entry.text !== text) return false;
    return renewing ? entry.renewAt !== null && performance.now() < entry.renewAt : entry.renewAt === null;
  }

  /** The text the database last held under `key`, as far as is known now; a guess to be checked. */
  text(key: string): string | undefined {
    const entry = this.#entries.get(key);
    return entry?.writers === 0 ? entry.text : undefined;
  }

  /** Call before a write or delete is sent; pass the result to {@link endWrite}. */
  beginWrite(key: string): number {
    const ticket = ++this.#tick;
    const entry = this.#entries.get(key) ?? { text: undefined, renewAt: null, writers: 0, changedAt: 0, settledAt: 0, seenAt: 0 };
    // Counted as in flight before anything can evict it.
    entry.writers += 1;
    entry.changedAt = ticket;
    this.#set(key, entry, undefined, null);
    return ticket;
  }

  /**
   * A write that began at `ticket` ended, leaving `text` in the database
   * (`undefined` when it failed or deleted the row).
   */
  endWrite(key: string, ticket: number, text: string | undefined, renewAt: number | null): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    entry.writers -= 1;
    entry.settledAt = ++this.#tick;
    // Kept even when unknown: its ticks stop an older read from passing off what it saw as current.
    if (entry.writers === 0 && entry.changedAt === ticket && text !== undefined) this.#set(key, entry, text, renewAt);
  }

  #set(key: string, entry: Entry, text: string | undefined, renewAt: number | null): void {
    this.#chars += (text?.length ?? 0) - (entry.text?.length ?? 0);
    entry.text = text;
    entry.renewAt = renewAt;
    // Most recently used last, so eviction takes the oldest first.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size <= this.#maxEntries && this.#chars <= this.#maxChars) return;
    for (const [oldKey, old] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#chars <= this.#maxChars) return;
      if (old.writers > 0) continue;
      this.#entries.delete(oldKey);
      this.#chars -= old.text?.length ?? 0;
      this.#forgottenAt = this.#tick;
    }
  }
}
