/**
 * compressedCodec's unit tests (test/unit/compressed-codec.test.ts) as they are, under Deno:
 * its CompressionStream and WebCrypto, and node:zlib for the foreign tokens they refuse.
 */
import "../../unit/compressed-codec.test.ts";
