/**
 * The default codec's cost per write, side by side: the replacer it had before
 * (kept here verbatim as the reference), the walk it has now, and plain
 * `JSON.stringify` as the floor. CPU only, no database.
 */
import { strictJson } from "../src/codec.js";

/** Nanoseconds per encode of a typical session, for each way of encoding it. */
export interface CodecTimings {
  /** Bytes of JSON one encoded session takes. */
  readonly bytes: number;
  /** `JSON.stringify(value, refuseLossy)`, the default codec before the walk. */
  readonly previous: number;
  /** `strictJson.stringify(value)`: the walk, which checks the value and writes its JSON text in one pass. */
  readonly current: number;
  /** `JSON.stringify(value)`, which refuses nothing: the floor. */
  readonly plain: number;
}

// The previous default codec, verbatim from src/codec.ts before the walk replaced it.
/** A JSON.stringify replacer that throws where JSON would store something else than it was given. */
function refuseLossy(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // toJSON has already run: an invalid Date arrives as null, so look at the original.
  const original = this[key];
  if (typeof value === "function" || typeof value === "symbol")
    throw new TypeError(`a ${typeof value} has no JSON form`);
  if (
    (typeof value === "number" && !Number.isFinite(value)) ||
    (original instanceof Date && Number.isNaN(original.getTime()))
  ) {
    throw new TypeError(`${String(original)} has no JSON form`);
  }
  return value;
}

/**
 * A grammY session as bots keep them, about 1.4 KB of JSON: 20 fields of
 * strings, numbers, flags, nested objects and arrays, and one field set to
 * `undefined`. `i` varies the numbers so that no two are alike.
 */
export function typicalSession(i: number): Record<string, unknown> {
  return {
    step: "checkout",
    language: "en",
    userId: 123_456_789 + i,
    chatId: -1_001_234_567_890 - i,
    firstName: "Ada",
    username: "ada_lovelace",
    isPremium: i % 2 === 0,
    messageCount: i * 7,
    lastSeen: 1_717_171_717_171 + i,
    settings: { theme: "dark", notifications: true, timezone: "Europe/London", units: "metric" },
    cart: {
      items: [
        { sku: "TEA-001", title: "Earl Grey, loose leaf, 250 g", quantity: 2, price: 9.99 },
        { sku: "MUG-022", title: "Enamel mug, blue", quantity: 1, price: 19.5 },
        { sku: "BIS-003", title: "Shortbread biscuits", quantity: 3, price: 4.25 },
        { sku: "JAM-104", title: "Strawberry jam, 340 g", quantity: 1, price: 5.1 },
      ],
      coupon: null,
      currency: "EUR",
    },
    history: ["start", "menu", "catalog", "item:TEA-001", "item:MUG-022", "cart", "checkout"],
    address: {
      name: "Ada Lovelace",
      street: "12 St James's Square",
      city: "London",
      postcode: "SW1Y 4JH",
      country: "GB",
    },
    flags: { onboarded: true, betaTester: false, muted: false, acceptedTerms: true },
    recentMessageIds: [4101 + i, 4102 + i, 4105 + i, 4110 + i, 4111 + i, 4120 + i],
    pendingReply: undefined,
    conversation: {
      name: "order",
      answers: [
        { question: "How many cups a day?", answer: "three" },
        { question: "Delivery window?", answer: "after 6pm" },
      ],
    },
    note: "Please ring twice; the bell on the left is broken. Leave parcels with the concierge if nobody answers.",
    referrer: "t.me/some_channel",
    version: 3,
  };
}

// Encodes by turn from a ring of distinct sessions, so no engine cache sees the same object twice in a row.
const RING = 64;

/**
 * Times the three encoders on the same sessions, round by round in a rotating
 * order so that machine noise hits all alike; answers the median of the rounds.
 */
export function measureCodecs(quick: boolean): CodecTimings {
  const sessions = Array.from({ length: RING }, (_, i) => typicalSession(i));
  const encoders: [keyof Omit<CodecTimings, "bytes">, (value: unknown) => unknown][] = [
    ["previous", (value) => JSON.stringify(value, refuseLossy)],
    ["current", (value) => strictJson.stringify(value)],
    ["plain", (value) => JSON.stringify(value)],
  ];
  const { rounds, perRound, warmup } = quick
    ? { rounds: 15, perRound: 4_000, warmup: 3 }
    : { rounds: 40, perRound: 15_000, warmup: 5 };
  const samples = new Map<string, number[]>(encoders.map(([name]) => [name, []]));
  let sink = 0;
  for (let round = 0; round < warmup + rounds; round += 1) {
    for (let e = 0; e < encoders.length; e += 1) {
      const [name, encode] = encoders[(round + e) % encoders.length] as (typeof encoders)[number];
      const start = process.hrtime.bigint();
      for (let i = 0; i < perRound; i += 1) sink += (encode(sessions[i % RING]) as string).length;
      const ns = Number(process.hrtime.bigint() - start) / perRound;
      if (round >= warmup) samples.get(name)?.push(ns);
    }
  }
  if (sink === 0) throw new Error("nothing was encoded");
  const median = (name: string) => {
    const sorted = [...(samples.get(name) ?? [])].sort((a, b) => a - b);
    return sorted[sorted.length >> 1] ?? Number.NaN;
  };
  return {
    bytes: JSON.stringify(sessions[0]).length,
    previous: median("previous"),
    current: median("current"),
    plain: median("plain"),
  };
}
