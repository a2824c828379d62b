import { expect } from "vitest";
import type { Codec } from "../../src/codec.js";
import { StorageOptionError } from "../../src/errors.js";

/** The StorageOptionError `call` throws; fails the test if it throws nothing or something else. */
export function optionError(call: () => unknown): StorageOptionError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(StorageOptionError);
    return error as StorageOptionError;
  }
  throw new Error("no option was refused");
}

/** The message of the TypeError a codec's `stringify` throws for `value`; fails the test if it accepts it. */
export function stringifyRefusal(codec: Pick<Codec, "stringify">, value: unknown): string {
  try {
    void codec.stringify(value);
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return (error as Error).message;
  }
  throw new Error("the value was accepted");
}
