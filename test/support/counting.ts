/**
 * Wraps a client so that every statement it is asked to run is recorded,
 * whichever entry point the client has (`query`, or postgres.js's `unsafe`).
 */
export function countStatements<C extends object>(client: C): { client: C; statements: string[] } {
  const statements: string[] = [];
  const proxy = new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "query" || property === "unsafe") {
        return (text: string, ...rest: unknown[]) => {
          statements.push(text);
          return Reflect.apply(value, target, [text, ...rest]);
        };
      }
      return value.bind(target);
    },
  });
  return { client: proxy, statements };
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
