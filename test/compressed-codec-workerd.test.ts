import { deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unstable_dev, type Unstable_DevWorker } from "wrangler";

// compressedCodec in real workerd, under wrangler (test/support/codec-worker.ts), on Workers' own
// CompressionStream: what it stores, it reads back; it reads a token Node's zlib wrote; it refuses
// a stream cut short or followed by other bytes, which workerd's DecompressionStream may let through.
describe("compressedCodec in workerd", () => {
  let worker: Unstable_DevWorker;
  beforeAll(async () => {
    process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
    process.env.WRANGLER_SEND_METRICS = "false";
    worker = await unstable_dev("test/support/codec-worker.ts", {
      config: "test/support/codec-worker.toml",
      ip: "127.0.0.1",
      port: 0,
      inspectorPort: 0,
      logLevel: "warn",
      experimental: { disableExperimentalWarning: true },
    });
  }, 120_000);
  afterAll(() => worker?.stop());

  it("round-trips, composes with encryptedCodec, and refuses what it did not write", async () => {
    const value = { log: Array.from({ length: 100 }, (_, i) => ({ step: i, text: `answer ${i} 🔐` })) };
    const inner = `{"a":"${"a".repeat(2000)}"}`;
    const token = JSON.stringify(`gpsz1.${deflateSync(Buffer.from(inner)).toString("base64url")}`);
    const response = await worker.fetch("http://worker/", { method: "POST", body: JSON.stringify({ value, token }) });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as Record<string, unknown>;
    expect(answer.stored).toMatch(/^"gpsz1\.[\w-]+"$/);
    expect(String(answer.stored).length).toBeLessThan(JSON.stringify(value).length / 4);
    expect(answer.parsed).toStrictEqual(value);
    expect(answer.decrypted).toStrictEqual(value);
    expect(answer.fromNode).toBe(inner);
    const notWhole = /not a compressedCodec token.*(not one whole zlib stream|does not inflate)/;
    expect(answer.cutShort).toMatch(notWhole);
    expect(answer.junk).toMatch(notWhole);
  });
});
