// A Worker that runs compressedCodec in workerd (test/compressed-codec-workerd.test.ts starts it
// under wrangler): a round trip, compress-then-encrypt, a token written by Node's zlib, and refusals.
import { compressedCodec, encryptedCodec } from "../../src/index.ts";

export default {
  async fetch(request: Request): Promise<Response> {
    const { value, token } = (await request.json()) as { value: unknown; token: string };
    const codec = compressedCodec();
    const stored = await codec.stringify(value, { key: "k" });
    const both = encryptedCodec({ secret: "correct horse battery staple, 32+ chars of secret", codec });
    const encrypted = await both.stringify(value, { key: "k" });
    const refusal = (text: string) =>
      codec.unwrap(text).then(
        () => "accepted",
        (error: Error) => error.message,
      );
    return Response.json({
      stored,
      parsed: await codec.parse(stored, { key: "k" }),
      decrypted: await both.parse(encrypted, { key: "k" }),
      fromNode: await codec.unwrap(token),
      cutShort: await refusal(`${token.slice(0, -5)}"`),
      junk: await refusal(`${token.slice(0, -1)}AAAA"`),
    });
  },
};
