/**
 * `readAll*`: the rows of a key builder's keys, a page at a time in key order
 * (keyset pagination), so memory stays constant whatever the table's size.
 */
import { textOf, type Row } from "./driver/clients.ts";
import { runOptions } from "./driver/run-options.ts";
import type { RuntimeDriver } from "./driver/runtime-driver.ts";
import { StorageOptionError } from "./errors.ts";
import { prefixUpperBound, type KeyBuilder } from "./keys.ts";
import type { Trace } from "./observe.ts";
import type { Statements } from "./statements.ts";

const KEY_PAGE_SIZE = 1000;
const ENTRY_PAGE_SIZE = 100;

/**
 * Every live row whose stored key `keys` can parse, with its grammY key.
 *
 * @param withValues select the values too (pages of 100 rows, else 1000 keys)
 * @throws StorageOptionError when the key builder has no `parse`
 */
export async function* scanRows(
  driver: RuntimeDriver,
  statements: Statements,
  keys: KeyBuilder,
  withValues: boolean,
  trace: Trace | undefined,
): AsyncGenerator<[key: string, row: Row], void, undefined> {
  const parse = keys.parse;
  if (parse === undefined) {
    throw new StorageOptionError(
      "keyBuilder",
      "readAll* needs keyBuilder.parse(storedKey); add it, or use prefixKeys()",
    );
  }
  const lower = keys.prefix ?? "";
  const upper = lower === "" ? undefined : prefixUpperBound(lower);
  const pageSize = withValues ? ENTRY_PAGE_SIZE : KEY_PAGE_SIZE;
  let cursor = lower;
  for (let first = true; ; first = false) {
    const text = statements.page({ values: withValues, first, bounded: upper !== undefined });
    const params = upper === undefined ? [cursor, pageSize] : [cursor, upper, pageSize];
    const rows = await driver.run(text, params, runOptions("empty", { trace, readsOnly: true }));
    for (const row of rows) {
      const key = parse.call(keys, textOf(row, "key"));
      if (key !== undefined) yield [key, row];
    }
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < pageSize) return;
    cursor = textOf(last, "key");
  }
}
