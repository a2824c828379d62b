import { build, transform } from "esbuild";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** Bytes of one bundle, minified and gzipped. */
export interface BundleSize {
  readonly name: string;
  readonly minified: number;
  readonly gzipped: number;
}

const root = fileURLToPath(new URL("..", import.meta.url));

/** What one module adds to the gzipped bundle. */
export interface BundlePart {
  /** The module's path in the repository. */
  readonly module: string;
  /** Its code, minified on its own. */
  readonly minified: number;
  /** The gzipped bundle's bytes with it, less those without it. */
  readonly gzipped: number;
}

const gzipped = (code: string | Uint8Array) => gzipSync(code, { level: 9 }).length;

async function bundled(source: string, platform: "neutral" | "browser", minify: boolean) {
  const result = await build({
    stdin: { contents: source, resolveDir: root, loader: "ts" },
    absWorkingDir: root,
    bundle: true,
    minify,
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
  return result.outputFiles[0]?.text ?? "";
}

async function measure(name: string, source: string, platform: "neutral" | "browser"): Promise<BundleSize> {
  const code = new TextEncoder().encode(await bundled(source, platform, true));
  return { name, minified: code.length, gzipped: gzipped(code) };
}

const STORAGE_ONLY = 'export { PostgresStorage } from "./src/index.ts";';

/**
 * What each module adds to `PostgresStorage`'s bundle: the bundle unminified
 * (esbuild marks where each module starts), each module minified on its own,
 * and the gzipped size of all of them less that without the module. The parts
 * add up to less than the bundle: what modules share compresses once.
 */
export async function measureBundleParts(): Promise<BundlePart[]> {
  const sections = (await bundled(STORAGE_ONLY, "neutral", false)).split(/^\/\/ (src\/\S+)\n/m).slice(1);
  const modules: { module: string; code: string }[] = [];
  for (let i = 0; i + 1 < sections.length; i += 2) {
    const { code } = await transform(sections[i + 1] ?? "", { minify: true, loader: "js", format: "esm" });
    modules.push({ module: sections[i] ?? "", code });
  }
  const whole = gzipped(modules.map((m) => m.code).join(""));
  return modules
    .map(({ module, code }) => ({
      module,
      minified: code.length,
      gzipped: whole - gzipped(modules.flatMap((m) => (m.module === module ? [] : [m.code])).join("")),
    }))
    .sort((a, b) => b.gzipped - a.gzipped);
}

/**
 * What a bot ships of the library (`PostgresStorage`; the rest tree-shakes
 * away when unused), everything the library exports, and the whole example
 * Worker (grammY, conversations, zod, Neon's driver and the library).
 */
export async function measureBundles(): Promise<BundleSize[]> {
  return [
    await measure("grammy-postgres-storage: PostgresStorage", STORAGE_ONLY, "neutral"),
    await measure("grammy-postgres-storage: everything it exports", 'export * from "./src/index.ts";', "neutral"),
    await measure(
      "worker-example: the whole Worker",
      'export { default } from "./worker-example/src/index.ts";',
      "browser",
    ),
  ];
}
