// Records the statements a client is asked to run: the round-trip counts of the tests and the benchmarks.
/**
 * Wraps a client so that every statement it is asked to run is recorded,
 * whichever entry point the client has (`query` with a text or a config
 * object, or postgres.js's `unsafe`), including on connections a pool hands
 * out through `connect()`.
 */
export function countStatements<C extends object>(client: C): { client: C; statements: string[] } {
  const statements: string[] = [];
  const counted = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property) {
        const value: unknown = Reflect.get(object, property, object);
        if (typeof value !== "function") return value;
        if (property === "query" || property === "unsafe") {
          return (statement: string | { text: string }, ...rest: unknown[]) => {
            statements.push(typeof statement === "string" ? statement : statement.text);
            return Reflect.apply(value, object, [statement, ...rest]);
          };
        }
        // A pool's checked-out connection (a pg Client's connect() resolves to nothing).
        if (property === "connect") {
          return async (...args: unknown[]) => {
            const connection: unknown = await Reflect.apply(value, object, args);
            return typeof connection === "object" && connection !== null ? counted(connection) : connection;
          };
        }
        return value.bind(object);
      },
    });
  return { client: counted(client), statements };
}

/** How many statements a counted client ran while a bot handled one update. */
export async function statementsPerUpdate(
  counted: { readonly statements: string[] },
  bot: { handleUpdate(update: never): Promise<void> },
  update: unknown,
): Promise<number> {
  const before = counted.statements.length;
  await bot.handleUpdate(update as never);
  return counted.statements.length - before;
}
