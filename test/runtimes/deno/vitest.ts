/**
 * The slice of vitest's API that the shared suites use (describe, it,
 * beforeAll, afterAll, expect, inject), on top of `Deno.test`, so that
 * test/support/conformance.ts runs under Deno unchanged. import_map.json beside this
 * file maps the specifier "vitest" here (run.sh passes it with --import-map).
 *
 * Each top-level `describe` becomes one `Deno.test`; nested describes and
 * tests become its steps, run in order. `beforeAll`/`afterAll` run once
 * around the tests of the block they were declared in, as in vitest. `expect`
 * is vitest's own (`@vitest/expect` on chai, from this repo's node_modules).
 */
import {
  ASYMMETRIC_MATCHERS_OBJECT,
  chai,
  customMatchers,
  type ExpectStatic,
  getState,
  GLOBAL_EXPECT,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState,
} from "@vitest/expect";

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

function createExpect(): ExpectStatic {
  const expect = ((value: unknown, message?: string) => {
    const { assertionCalls } = getState(expect);
    setState({ assertionCalls: assertionCalls + 1 }, expect);
    return chai.expect(value, message);
  }) as ExpectStatic;
  Object.assign(expect, chai.expect);
  Object.assign(expect, (globalThis as Record<symbol, unknown>)[ASYMMETRIC_MATCHERS_OBJECT]);
  expect.getState = () => getState(expect);
  expect.setState = (state) => setState(state, expect);
  setState(
    {
      assertionCalls: 0,
      isExpectingAssertions: false,
      isExpectingAssertionsError: null,
      expectedAssertionsNumber: null,
      expectedAssertionsNumberErrorGen: null,
    },
    expect,
  );
  (expect as unknown as { extend(matchers: unknown): void }).extend = (matchers) =>
    (chai.expect as unknown as { extend(expect: unknown, matchers: unknown): void }).extend(expect, matchers);
  expect.extend(customMatchers);
  return expect;
}

/** vitest's `expect`, with its Jest-style and asymmetric matchers. */
export const expect: ExpectStatic = createExpect();
Object.defineProperty(globalThis, GLOBAL_EXPECT, { value: expect, writable: true, configurable: true });

type Body = () => unknown;

interface Test {
  readonly kind: "test";
  readonly name: string;
  readonly body: Body;
}

interface Block {
  readonly kind: "block";
  readonly name: string;
  readonly children: (Test | Block)[];
  readonly beforeAll: Body[];
  readonly afterAll: Body[];
}

/** The block whose body is being declared, if any. */
let current: Block | undefined;

/** Runs a block's tests in order, with its hooks around them, as steps of `t`. */
async function run(block: Block, t: Deno.TestContext): Promise<void> {
  for (const hook of block.beforeAll) await hook();
  try {
    for (const child of block.children) {
      if (child.kind === "test") {
        await t.step({ name: child.name, fn: async () => void (await child.body()), ...sanitizers });
      } else {
        await t.step({ name: child.name, fn: (inner) => run(child, inner), ...sanitizers });
      }
    }
  } finally {
    for (const hook of block.afterAll) await hook();
  }
}

// Drivers keep pools, sockets and timers across tests, as in any test runner; their leaks are not these tests' subject.
const sanitizers = { sanitizeOps: false, sanitizeResources: false, sanitizeExit: false } as const;

/** A block of tests; at the top level, one `Deno.test`. */
export function describe(name: string, body: () => void): void {
  const block: Block = { kind: "block", name, children: [], beforeAll: [], afterAll: [] };
  const parent = current;
  current = block;
  try {
    body();
  } finally {
    current = parent;
  }
  if (parent !== undefined) {
    parent.children.push(block);
  } else {
    Deno.test({ name, fn: (t) => run(block, t), ...sanitizers });
  }
}

/** One test; at the top level, one `Deno.test`. The timeout argument is ignored. */
export function it(name: string, body: Body, _timeout?: number): void {
  if (current === undefined) {
    Deno.test({ name, fn: async () => void (await body()), ...sanitizers });
  } else {
    current.children.push({ kind: "test", name, body });
  }
}

/** The same as {@link it}. */
export const test: typeof it = it;

/** Runs once before the tests of the enclosing block. */
export function beforeAll(hook: Body): void {
  if (current === undefined) throw new Error("beforeAll outside describe is not supported by the Deno shim");
  current.beforeAll.push(hook);
}

/** Runs once after the tests of the enclosing block, even when one failed. */
export function afterAll(hook: Body): void {
  if (current === undefined) throw new Error("afterAll outside describe is not supported by the Deno shim");
  current.afterAll.push(hook);
}

/** What vitest's global setup provides (test/support/global-setup.ts): here, from the environment. */
export interface ProvidedContext {
  databaseUrl: string;
  backend: "postgres" | "pglite";
}

/** vitest's `inject`: the database comes from DATABASE_URL, which the Deno run requires. */
export function inject<K extends keyof ProvidedContext>(key: K): ProvidedContext[K] {
  const url = Deno.env.get("DATABASE_URL");
  if (url === undefined || url === "") throw new Error("the Deno tests need DATABASE_URL (a PostgreSQL server)");
  const provided: ProvidedContext = { databaseUrl: url, backend: "postgres" };
  return provided[key];
}
