/**
 * Runs before the Bun tests (run.sh passes it to `bun test --preload`): makes
 * the module "vitest" bun:test, whose describe, it, expect, beforeAll and
 * afterAll are vitest's API, plus `inject`, which vitest fills from
 * test/support/global-setup.ts. So test/support/conformance.ts and the support files
 * run under Bun as they are on disk.
 *
 * Bun itself turns the specifier "vitest" into "bun:test" while it transpiles,
 * before any resolver or `mock.module` sees it, and bun:test has no `inject`.
 * So this repo's test files are loaded through a plugin that names a module of
 * its own instead: the one import alias, done as a loader does it.
 *
 * Written to type-check under the repo's tsconfig (Node's types, no
 * bun-types): Bun's modules and globals are reached through variables.
 */
interface PluginBuilder {
  onLoad(
    options: { filter: RegExp },
    load: (args: { path: string }) => Promise<{ contents: string; loader: "ts" }>,
  ): void;
  module(specifier: string, load: () => { exports: Record<string, unknown>; loader: "object" }): void;
}
const { Bun } = globalThis as unknown as {
  Bun: {
    plugin(plugin: { name: string; setup(build: PluginBuilder): void }): void;
    file(path: string): { text(): Promise<string> };
  };
};

const bunTestSpecifier = "bun:test";
const bunTest = (await import(bunTestSpecifier)) as Record<string, unknown>;

const provided: Record<string, () => string> = {
  databaseUrl: () => {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("the Bun tests need DATABASE_URL, a PostgreSQL server");
    return url;
  },
  backend: () => "postgres",
};

function inject(key: string): string {
  const value = provided[key];
  if (value === undefined) throw new Error(`inject(${JSON.stringify(key)}) is not provided under Bun`);
  return value();
}

const SHIM = "vitest-under-bun";
const testDir = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const ownTests = new RegExp(`^${testDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/.*\\.ts$`);

Bun.plugin({
  name: SHIM,
  setup(build) {
    build.module(SHIM, () => ({ exports: { ...bunTest, inject }, loader: "object" }));
    build.onLoad({ filter: ownTests }, async ({ path }) => ({
      contents: (await Bun.file(path).text()).replace(/(\bfrom\s*)(["'])vitest\2/g, `$1"${SHIM}"`),
      loader: "ts",
    }));
  },
});
