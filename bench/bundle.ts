import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** Bytes of one bundle, minified and gzipped. */
export interface BundleSize {
  readonly name: string;
  readonly minified: number;
  readonly gzipped: number;
}

const root = fileURLToPath(new URL("..", import.meta.url));

async function measure(name: string, source: string, platform: "neutral" | "browser"): Promise<BundleSize> {
  const result = await build({
    stdin: { contents: source, resolveDir: root, loader: "ts" },
    absWorkingDir: root,
    bundle: true,
    minify: true,
    write: false,
    format: "esm",
    platform,
    target: "es2022",
    // As wrangler bundles for Workers.
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    alias: { "grammy-postgres-storage": "./src/index.ts" },
    external: ["cloudflare:*", "node:*"],
    logLevel: "silent",
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { name, minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

/**
 * What a bot ships of the library (`PostgresStorage`; the rest tree-shakes
 * away when unused), everything the library exports, and the whole example
 * Worker (grammY, conversations, zod, Neon's driver and the library).
 */
export async function measureBundles(): Promise<BundleSize[]> {
  return [
    await measure(
      "grammy-postgres-storage: PostgresStorage",
      'export { PostgresStorage } from "./src/index.ts";',
      "neutral",
    ),
    await measure("grammy-postgres-storage: everything it exports", 'export * from "./src/index.ts";', "neutral"),
    await measure(
      "worker-example: the whole Worker",
      'export { default } from "./worker-example/src/index.ts";',
      "browser",
    ),
  ];
}
