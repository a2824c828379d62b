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
