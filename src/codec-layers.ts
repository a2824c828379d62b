/**
 * A codec taken apart into the codec that turns sessions into text (the plain
 * codec) and the layers that transform that text on its way to the table
 * (encryption, compression). The storage compares and merges sessions on the
 * plain text: an unchanged session is then recognised without encrypting it.
 */
import { StorageOptionError } from "./errors.ts";
import { cannotDecode, cannotEncode, type Codec, type KeyContext } from "./codec.ts";

/** A codec that wraps another's text. */
type Layer = Codec & Required<Pick<Codec, "wrap" | "unwrap">>;

/** A codec as the storage runs it. */
export interface CodecStack {
  /** The codec given as the option. */
  readonly codec: Codec;
  /** The innermost codec: what turns a session into text, and back. */
  readonly plain: Codec;
  /** The codecs that wrap the plain text, outermost first. */
  readonly layers: readonly Layer[];
}

/**
 * Takes a codec apart along its `inner` codecs.
 *
 * @throws StorageOptionError when a codec names an `inner` codec without `wrap` and `unwrap`
 */
export function stackOf(codec: Codec): CodecStack {
  const layers: Layer[] = [];
  let plain = codec;
  while (plain.inner !== undefined) {
    if (typeof plain.wrap !== "function" || typeof plain.unwrap !== "function") {
      throw new StorageOptionError("codec", "a codec with an inner codec needs wrap(text) and unwrap(text) as well");
    }
    layers.push(plain as Layer);
    plain = plain.inner;
  }
  return { codec, plain, layers };
}

/** The stored text for a plain text: each layer wraps it, innermost first. */
export async function seal(stack: CodecStack, plain: string, at: KeyContext): Promise<string> {
  let text = plain;
  for (const layer of stack.layers.slice().reverse()) {
    try {
      text = await layer.wrap(text, at);
    } catch (error) {
      throw cannotEncode(at, error);
    }
  }
  return text;
}

/** The plain text of a stored text: each layer unwraps it, outermost first. */
export async function unseal(stack: CodecStack, stored: string, at: KeyContext): Promise<string> {
  let text = stored;
  for (const layer of stack.layers) {
    try {
      text = await layer.unwrap(text, at);
    } catch (error) {
      throw cannotDecode(at, error);
    }
  }
  return text;
}
