/**
 * Time to live: the `millisecondsToLive` option, and when a session read back
 * unchanged needs no write to keep its expiry.
 */
import { StorageOptionError } from "./errors.ts";

/**
 * Checks the `millisecondsToLive` option.
 *
 * @returns the time to live, or `null` for rows that never expire
 * @throws StorageOptionError when it is not a positive finite number
 */
export function timeToLive(ttl: number | null | undefined): number | null {
  if (ttl === undefined || ttl === null) return null;
  if (!(typeof ttl === "number" && ttl > 0 && ttl < Infinity)) {
    throw new StorageOptionError("millisecondsToLive", "millisecondsToLive must be a positive number");
  }
  return ttl;
}

/**
 * For how long after it was read a row may be written back unchanged without
 * a statement, as far as its expiry goes. Without a TTL of the storage's own, a
 * write clears any expiry the row has, so it must be sent if the row has one;
 * with one, it renews the expiry once half the TTL has passed.
 *
 * @param ttl the storage's time to live, or `null`
 * @param msLeft the row's milliseconds before it expires, or `null` when it never does
 */
export function skippableMs(ttl: number | null, msLeft: number | null): number {
  if (ttl === null) return msLeft === null ? Infinity : 0;
  return msLeft === null ? 0 : msLeft - ttl / 2;
}
