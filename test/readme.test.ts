import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import { adminPool, databaseUrl, uniqueTable } from "./support/clients.js";
import { typeErrors } from "./support/snippets.js";

// Every snippet in the README is meant to be copied as it is, so it must be safe as it is.
// The pages of docs/, DEVELOP.md and worker-example/README.md (split out of the README) are held to the same.
const root = fileURLToPath(new URL("..", import.meta.url));
const PAGES = readdirSync(join(root, "docs"))
  .filter((file) => file.endsWith(".md"))
  .sort()
  .map((file) => `docs/${file}`);
const DOCUMENTS = ["README.md", ...PAGES, "DEVELOP.md", "worker-example/README.md"];
const texts = new Map<string, string>(DOCUMENTS.map((file) => [file, readFileSync(join(root, file), "utf8")]));
const readme = texts.get("README.md") ?? "";

/** A document's code blocks of a language, each with the heading it sits under. */
function codeBlocks(language: string, text = readme): { heading: string; code: string }[] {
  const blocks: { heading: string; code: string }[] = [];
  let heading = "";
  // Fences may be indented, inside a list item.
  const fence = /^(#{1,6} .*)$|^ *```(\w*)\n([\s\S]*?)^ *```$/gm;
  for (const match of text.matchAll(fence)) {
    if (match[1] !== undefined) heading = match[1];
    else if (match[2] === language) blocks.push({ heading, code: match[3] ?? "" });
  }
  return blocks;
}

/** Inline code in a document's prose (outside code blocks), with the heading it sits under. */
function inlineCode(text = readme): { heading: string; code: string }[] {
  const spans: { heading: string; code: string }[] = [];
  let heading = "";
  const prose = text.replace(/^ *```[\s\S]*?^ *```$/gm, "");
  for (const match of prose.matchAll(/^(#{1,6} .*)$|`([^`]+)`/gm)) {
    if (match[1] !== undefined) heading = match[1];
    else spans.push({ heading, code: match[2] ?? "" });
  }
  return spans;
}

/** Every document's TypeScript blocks and inline code, each labelled with its file and heading. */
function allSnippets(): { heading: string; code: string }[] {
  return [...texts].flatMap(([file, text]) =>
    [...codeBlocks("ts", text), ...inlineCode(text)].map(({ heading, code }) => ({
      heading: `${file} ${heading}`,
      code,
    })),
  );
}

/** The anchors GitHub gives a Markdown file's headings. */
function anchors(text: string): Set<string> {
  const prose = text.replace(/^ *```[\s\S]*?^ *```$/gm, "");
  return new Set(
    [...prose.matchAll(/^#{1,6} (.*)$/gm)].map(([, title = ""]) =>
      title
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    ),
  );
}

// pg's and Neon's Pool and Client, also as @vercel/postgres creates them; postgres.js and Bun's SQL need no listener.
const CONSTRUCTED = /\bnew\s+(?:pg\.)?(?:Pool|Client)\s*\(|\b(?:createPool|createClient)\s*\(\s*\{/g;
const ASSIGNED = /\b(?:const|let|var)\s+(\w+)\s*=\s*(?:await\s+)?$/;

/**
 * What a snippet lacks: every pg-style Pool or Client it creates must be held in
 * a variable that gets an error listener, or an error on an idle connection (a
 * server restart) is an uncaught error that ends the process.
 */
function missingErrorListeners(code: string): string[] {
  const problems: string[] = [];
  for (const match of code.matchAll(CONSTRUCTED)) {
    const before = code.slice(0, match.index);
    const variable = ASSIGNED.exec(before)?.[1];
    const line = code.slice(
      code.lastIndexOf("\n", match.index) + 1,
      code.indexOf("\n", match.index) === -1 ? undefined : code.indexOf("\n", match.index),
    );
    if (variable === undefined) problems.push(`created without a variable to listen on: ${line.trim()}`);
    else if (!new RegExp(`\\b${variable}\\.on\\(\\s*"error"`).test(code))
      problems.push(`${variable} has no ${variable}.on("error", …): ${line.trim()}`);
  }
  return problems;
}

describe("README snippets", () => {
  it("find the snippets that create clients (the check has something to check)", () => {
    const creating = allSnippets().filter(({ code }) => code.match(CONSTRUCTED) !== null);
    // Quick start, the Workers Pool, Hyperdrive's Client, Vercel's Node runtime, and Deno.
    expect(creating.length).toBeGreaterThanOrEqual(5);
    expect(creating.some(({ heading }) => heading === "README.md ## Quick start")).toBe(true);
    expect(creating.some(({ heading }) => heading.startsWith("docs/runtimes.md "))).toBe(true);
  });

  it("give every pg or Neon Pool and Client they create an error listener (README.md, docs/, DEVELOP.md, worker-example/README.md)", () => {
    const problems = allSnippets().flatMap(({ heading, code }) =>
      missingErrorListeners(code).map((problem) => `${heading}: ${problem}`),
    );
    expect(problems).toStrictEqual([]);
  });

  it("the check catches the Quick start as it was (a Pool created inline, no listener)", () => {
    expect(
      missingErrorListeners(
        `const storage = new PostgresStorage({ client: new pg.Pool({ connectionString: process.env.DATABASE_URL }) });`,
      ),
    ).toHaveLength(1);
    expect(
      missingErrorListeners(
        `const pool = new Pool({ connectionString: env.DATABASE_URL });\nconst storage = new PostgresStorage({ client: pool });`,
      ),
    ).toHaveLength(1);
    expect(
      missingErrorListeners(
        `const pool = new Pool({ connectionString: env.DATABASE_URL });\npool.on("error", console.error);`,
      ),
    ).toStrictEqual([]);
  });

  it("say where Env comes from in every Workers snippet that uses it", () => {
    const undeclared = [...texts.values()]
      .flatMap((text) => codeBlocks("ts", text))
      .filter(({ code }) => /[:<]\s*Env\b/.test(code))
      .filter(({ code }) => !/\b(?:interface|type)\s+Env\b/.test(code) && !/wrangler types/.test(code))
      .map(
        ({ heading, code }) =>
          `${heading}: ${code
            .split("\n")
            .find((line) => /\bEnv\b/.test(line))
            ?.trim()}`,
      );
    expect(undeclared).toStrictEqual([]);
    const usingEnv = [...texts.values()]
      .flatMap((text) => codeBlocks("ts", text))
      .filter(({ code }) => /[:<]\s*Env\b/.test(code));
    expect(usingEnv.length).toBeGreaterThanOrEqual(4);
  });
});

describe("every TypeScript snippet, compiled", () => {
  it("finds the snippets of every document (the check has something to check)", () => {
    const files = new Set([...texts].filter(([, text]) => codeBlocks("ts", text).length > 0).map(([file]) => file));
    for (const page of [
      "README.md",
      "docs/typed-state.md",
      "docs/updates.md",
      "docs/workers-and-vercel.md",
      "docs/runtimes.md",
    ])
      expect(files).toContain(page);
  });

  // Each ts block of every document is type-checked as a module with the project's tsconfig.json;
  // the names a snippet leaves to its prose (client, bot, env, …) are declared in test/support/snippets.ts.
  it("type-check (README.md, docs/, DEVELOP.md, worker-example/README.md)", () => {
    const snippets = [...texts].flatMap(([file, text]) =>
      codeBlocks("ts", text)
        // The install line for Deno imports the source from a URL, which only Deno resolves.
        .filter(({ code }) => !/from "https:/.test(code))
        .map(({ heading, code }) => ({ label: `${file} ${heading}`, code })),
    );
    expect(snippets.length).toBeGreaterThanOrEqual(25);
    expect(typeErrors(root, snippets)).toStrictEqual([]);
  }, 60_000);

  it("the check catches a snippet that does not compile", () => {
    const errors = typeErrors(root, [
      {
        label: "bad",
        code: `import { PostgresStorage } from "grammy-postgres-storage";\nnew PostgresStorage({ client, ttl: 5 });`,
      },
      { label: "unknown name", code: `console.log(somethingUndeclared);` },
    ]);
    expect(errors.some((error) => error.startsWith("bad"))).toBe(true);
    expect(errors.some((error) => error.startsWith("unknown name"))).toBe(true);
  }, 60_000);
});

describe("the README and docs/", () => {
  it("keep the README short (at most 15 KB)", () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(15 * 1024);
  });

  it("link every page of docs/ from the README's Documentation list, and every page links back", () => {
    const list = readme.slice(
      readme.indexOf("## Documentation"),
      readme.indexOf("\n## ", readme.indexOf("## Documentation") + 1),
    );
    const unlisted = PAGES.filter((page) => !list.includes(`](${page})`));
    expect(unlisted).toStrictEqual([]);
    const orphans = PAGES.filter((page) => !(texts.get(page) ?? "").includes("../README.md"));
    expect(orphans).toStrictEqual([]);
  });

  it("list every H2 section of the README in its table of contents", () => {
    const contents = readme.slice(
      readme.indexOf("## Contents"),
      readme.indexOf("\n## ", readme.indexOf("## Contents") + 1),
    );
    const h2 = [...readme.replace(/^ *```[\s\S]*?^ *```$/gm, "").matchAll(/^## (.*)$/gm)].map(
      ([, title = ""]) => title,
    );
    const missing = h2
      .filter((title) => title !== "Contents" && !title.startsWith("Why "))
      .filter((title) => !contents.includes(`[${title}](#`));
    expect(h2.length).toBeGreaterThan(5);
    expect(missing).toStrictEqual([]);
  });
});

describe("README.md, docs/, DEVELOP.md and worker-example/README.md", () => {
  const scripts = Object.keys(
    (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts,
  );

  it("link to files that exist, and to headings that exist", () => {
    const broken: string[] = [];
    for (const [file, text] of texts) {
      for (const [, target = ""] of text.replace(/^ *```[\s\S]*?^ *```$/gm, "").matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue; // https: and the like
        const [path = "", anchor] = target.split("#");
        const resolved = path === "" ? join(root, file) : join(root, dirname(file), path);
        if (!existsSync(resolved)) broken.push(`${file}: ${target} (no such file)`);
        else if (
          anchor !== undefined &&
          resolved.endsWith(".md") &&
          !anchors(readFileSync(resolved, "utf8")).has(anchor)
        ) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toStrictEqual([]);
  });

  it("name only npm scripts that package.json has", () => {
    const unknown = [...texts].flatMap(([file, text]) =>
      [...text.matchAll(/\bnpm run ([\w:-]+)/g)]
        .map(([, name = ""]) => name)
        .filter((name) => !scripts.includes(name))
        .map((name) => `${file}: npm run ${name}`),
    );
    expect(unknown).toStrictEqual([]);
  });

  it("name only repository files that exist (a path from the root, or from the document's directory)", () => {
    const missing = [...texts].flatMap(([file, text]) =>
      inlineCode(text)
        .flatMap(({ code }) => code.split(/[\s,]+/))
        .filter((word) => /^(?:src|dev|test|bench|scripts|docs|worker-example|vercel|\.ci)\/[\w./-]*[\w/]$/.test(word))
        .filter((path) => !existsSync(join(root, path)) && !existsSync(join(root, dirname(file), path)))
        .map((path) => `${file}: ${path}`),
    );
    expect(missing).toStrictEqual([]);
  });
});

// The Quick start's own lines, run in a child process as a bot runs them: its idle
// connections are terminated as a server restart terminates them, and the process lives on.
// PGlite has no backends to terminate (one in-process backend serves every connection).
describe.skipIf(inject("backend") === "pglite")("the Quick start's pool, run as it is written", () => {
  const { admin, close } = adminPool();
  const table = uniqueTable("quickstart");
  const directory = mkdtempSync(join(tmpdir(), "gps-test-quickstart-"));

  afterAll(async () => {
    rmSync(directory, { recursive: true, force: true });
    await admin(`DROP TABLE IF EXISTS "${table}"`);
    await close();
  });

  /** The Quick start's database lines (imports, pool, listener, storage) on the test's own table, then a write, a wait, a read. */
  function quickStartScript(withoutListener: boolean): string {
    const quickStart = codeBlocks("ts").find(({ heading }) => heading === "## Quick start")?.code ?? "";
    const require = createRequire(import.meta.url);
    let lines = quickStart
      .split("\n")
      .filter(
        (line) =>
          /^import .* from "(pg|grammy-postgres-storage)";$/.test(line) || /\bpool\b/.test(line) || /^\/\/ /.test(line),
      )
      .map((line) =>
        line
          .replace(/from "pg"/, `from ${JSON.stringify(pathToFileURL(require.resolve("pg")).href)}`)
          .replace(
            /from "grammy-postgres-storage"/,
            `from ${JSON.stringify(pathToFileURL(join(root, "src/index.ts")).href)}`,
          ),
      );
    if (withoutListener) lines = lines.filter((line) => !line.includes('pool.on("error"'));
    const script = lines.join("\n");
    const storageLine = "new PostgresStorage({ client: pool })";
    expect(script).toContain(storageLine);
    expect(script).toContain("new pg.Pool(");
    return [
      // Only the table changes: the test writes to a table of its own, not grammy_sessions.
      script.replace(storageLine, "new PostgresStorage({ client: pool, tableName: process.env.GPS_TEST_TABLE })"),
      `await storage.write("chat", { count: 1 });`,
      `console.log("ready");`,
      `await new Promise((resolve) => process.stdin.once("data", resolve));`,
      `await new Promise((resolve) => setTimeout(resolve, 300));`,
      `console.log("read " + JSON.stringify(await storage.read("chat")));`,
      `await pool.end();`,
      `process.stdin.destroy();`,
    ].join("\n");
  }

  /** Runs the script, terminates its connections once it has written, and reports how it ended. */
  async function runAndTerminate(
    script: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string; terminated: number }> {
    const file = join(directory, `quickstart-${Math.random().toString(36).slice(2)}.mts`);
    writeFileSync(file, script);
    const applicationName = uniqueTable("quickstart_app");
    const url = new URL(databaseUrl());
    url.searchParams.set("application_name", applicationName);
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: url.href, GPS_TEST_TABLE: table },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let terminated = 0;
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on("error", () => {}); // the child may be gone by the time it is told to go on
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("ready\n")) resolve();
      });
      void exited.then(() => reject(new Error(`the script exited before it was ready:\n${stdout}\n${stderr}`)));
    });
    const rows = await admin(
      "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1",
      [applicationName],
    );
    terminated = rows.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.stdin.write("go\n");
    const code = await exited;
    return { code, stdout, stderr, terminated };
  }

  it("survives pg_terminate_backend of its idle connection, and reads on", async () => {
    const { code, stdout, stderr, terminated } = await runAndTerminate(quickStartScript(false));
    expect(terminated).toBeGreaterThan(0);
    expect(stderr).toMatch(/idle database connection lost: terminating connection due to administrator command/);
    expect(stdout).toContain('read {"count":1}');
    expect(code).toBe(0);
  });

  it("without its error listener, the same crashes the process (why the Quick start has one)", async () => {
    const { code, stdout, terminated, stderr } = await runAndTerminate(quickStartScript(true));
    expect(terminated).toBeGreaterThan(0);
    expect(stdout).not.toContain("read ");
    expect(stderr).toMatch(/terminating connection due to administrator command/);
    expect(code).not.toBe(0);
  });
});
