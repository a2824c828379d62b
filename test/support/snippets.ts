import { join } from "node:path";
import ts from "typescript";

/**
 * Type-checks documentation snippets as they are, with the project's tsconfig.json
 * ("grammy-postgres-storage" is the source), each snippet a module of its own.
 *
 * A snippet may use a name it does not declare, where the prose around it says what
 * it is (`client`, `bot`, `env`, …): {@link CONTEXT} declares each such name, and a
 * declaration is added only to the snippets that use the name without declaring it.
 * A name a snippet uses that is in neither is an error, as every other type error is.
 */
const CONTEXT: Record<string, string> = {
  client: `declare const client: import("pg").Pool;`,
  pool: `declare const pool: import("pg").Pool;`,
  storage: `declare const storage: import("grammy-postgres-storage").PostgresStorage<MySession>;`,
  bot: `declare const bot: import("grammy").Bot<import("@grammyjs/conversations").ConversationFlavor<import("grammy").Context & import("grammy").SessionFlavor<MySession>>>;`,
  key: `declare const key: string;`,
  env: `declare const env: { SESSION_SECRET: string; DATABASE_URL: string };`,
  initial: `declare const initial: () => { count: number };`,
  session: `import { session } from "grammy";`,
  conversations: `import { conversations } from "@grammyjs/conversations";`,
  trace: `import { trace } from "@opentelemetry/api";`,
  neon: `import { neon } from "@neondatabase/serverless";`,
  postgres: `import postgres from "postgres";`,
  PostgresStorage: `import { PostgresStorage } from "grammy-postgres-storage";`,
  Session: `declare const Session: import("zod").ZodObject<{ step: import("zod").ZodEnum<{ idle: "idle"; name: "name"; age: "age" }>; name: import("zod").ZodOptional<import("zod").ZodString> }>;`,
  compressedCodec: `import { compressedCodec } from "grammy-postgres-storage";`,
  migrations: `declare const migrations: { run(sql: string): Promise<void> };`,
  handleWebhook: `declare const handleWebhook: (request: Request) => Promise<Response>;`,
  createBot: `declare const createBot: (env: Env, storage: import("grammy-postgres-storage").PostgresStorage<{ count: number }>) => import("grammy").Bot;`,
  Env: `interface Env { BOT_TOKEN: string; BOT_INFO: string; WEBHOOK_SECRET: string; DATABASE_URL: string; HYPERDRIVE: Hyperdrive }`,
};

/** Globals of other runtimes, declared as far as the snippets use them (Bun's and Deno's own checks see the real ones). */
const RUNTIME_GLOBALS = `
interface ExecutionContext { waitUntil(promise: Promise<unknown>): void; passThroughOnException(): void }
interface ScheduledController { readonly scheduledTime: number; readonly cron: string; noRetry(): void }
interface Hyperdrive { readonly connectionString: string }
type MySession = { count: number; plan?: string; name?: string };
declare const Deno: { env: { get(name: string): string | undefined } };
declare module "bun" {
  // Bun's SQL as a PostgresStorage client is type-checked against bun-types by test/runtimes/bun/types-check.ts.
  export const SQL: any;
}
`;

export interface Snippet {
  /** Where it is: file and heading. */
  readonly label: string;
  readonly code: string;
}

/** The type errors of each snippet (an empty list when all compile), as "label: message" lines. */
export function typeErrors(root: string, snippets: readonly Snippet[]): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
      },
    },
  );
  if (config === undefined) throw new Error("tsconfig.json could not be read");
  // Snippets show a step, not a whole program: a name they declare and leave unused is fine.
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
  };
  const directory = join(root, "test", ".snippets");
  const globals = join(directory, "runtime-globals.d.ts");
  const files = snippets.map((_, index) => join(directory, `snippet-${index}.mts`));

  const compile = (sources: string[]): ts.Diagnostic[][] => {
    const texts = new Map<string, string>([
      [globals, RUNTIME_GLOBALS],
      ...files.map((file, i) => [file, sources[i] ?? ""] as const),
    ]);
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (file) => texts.has(file) || fileExists.call(host, file);
    host.readFile = (file) => texts.get(file) ?? readFile.call(host, file);
    host.getSourceFile = (file, language, ...rest) => {
      const text = texts.get(file);
      return text === undefined
        ? getSourceFile.call(host, file, language, ...rest)
        : ts.createSourceFile(file, text, language, true);
    };
    const program = ts.createProgram([globals, ...files], options, host);
    return files.map((file) => {
      const source = program.getSourceFile(file);
      return source === undefined
        ? []
        : [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    });
  };

  // First pass: which names each snippet lacks; second: with their declarations.
  const missing = compile(snippets.map(({ code }) => `${code}\nexport {};\n`)).map(
    (diagnostics) =>
      new Set(
        diagnostics
          // Cannot find name 'x' (2304, 2552: "Did you mean"), no value for the shorthand property 'x' (18004).
          .filter(({ code }) => code === 2304 || code === 2552 || code === 18004)
          .map(({ messageText }) => /'([^']+)'/.exec(ts.flattenDiagnosticMessageText(messageText, "\n"))?.[1] ?? "")
          .filter((name) => name in CONTEXT),
      ),
  );
  const sources = snippets.map(({ code }, index) => {
    const names = [...(missing[index] ?? [])];
    // createBot's declaration names Env; a snippet that lacks createBot may lack Env only through it.
    if (names.includes("createBot") && !/\b(?:interface|type)\s+Env\b/.test(code) && !names.includes("Env"))
      names.push("Env");
    return `${code}\nexport {};\n${names.map((name) => CONTEXT[name]).join("\n")}\n`;
  });
  return compile(sources).flatMap((diagnostics, index) =>
    diagnostics.map((diagnostic) => {
      const position =
        diagnostic.file !== undefined && diagnostic.start !== undefined
          ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
          : undefined;
      const line = position === undefined ? "" : ` line ${position.line + 1}`;
      return `${snippets[index]?.label}${line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, " ")}`;
    }),
  );
}
