/**
 * Which base belongs to which session object a read returned. Objects are
 * held strongly, newest last, within a bound of objects and of characters
 * of their bases' texts (the oldest are forgotten first); an object whose
 * texts alone exceed a sixteenth of that is remembered weakly instead, for as
 * long as it lives. Every read remembers its object, and a WeakMap entry per
 * read costs the garbage collector more than the read's own work (about 5 µs
 * of CPU a read, measured beside a Map), so the common small session avoids it.
 */
/** What of a base counts towards the bound: its texts. */
export interface Texts {
  readonly stored: string | null;
  readonly plain: string | null;
}

/** The characters a base keeps: its stored text, and its plain text where that differs. */
const charsOf = (base: Texts) =>
  (base.plain?.length ?? 0) + (base.stored === base.plain ? 0 : (base.stored?.length ?? 0));

/** Bases by session object. */
export class ObjectBases<Base extends Texts> {
  readonly #held = new Map<object, Base>();
  readonly #weak = new WeakMap<object, Base>();
  readonly #maxObjects: number;
  readonly #maxChars: number;
  #chars = 0;

  /**
   * @param maxObjects how many objects to hold at most
   * @param maxChars how many characters of their bases' texts to hold at most
   */
  constructor(maxObjects: number, maxChars: number) {
    this.#maxObjects = maxObjects;
    this.#maxChars = maxChars;
  }

  /** The base of `value`, if it is remembered. */
  get(value: object): Base | undefined {
    return this.#held.get(value) ?? this.#weak.get(value);
  }

  /** Remembers `base` as the base of `value`, replacing what it had. */
  set(value: object, base: Base): void {
    this.delete(value);
    const chars = charsOf(base);
    if (chars * 16 > this.#maxChars) {
      this.#weak.set(value, base);
      return;
    }
    this.#held.set(value, base);
    this.#chars += chars;
    while (this.#held.size > this.#maxObjects || this.#chars > this.#maxChars) {
      const [oldest, itsBase] = this.#held.entries().next().value as [object, Base];
      this.#held.delete(oldest);
      this.#chars -= charsOf(itsBase);
    }
  }

  /** Forgets the base of `value`. */
  delete(value: object): void {
    const held = this.#held.get(value);
    if (held === undefined) {
      this.#weak.delete(value);
      return;
    }
    this.#held.delete(value);
    this.#chars -= charsOf(held);
  }
}
