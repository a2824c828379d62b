/**
 * pg-style Pools and Clients: `pg` (also through Hyperdrive), Neon's Pool and
 * Client, and `@vercel/postgres`'s (pg 8.x forks, all of them). They prepare
 * named statements. A Pool hands out one connection per try, checked out and
 * given back here: a Pool's own `query()` discards its connection after any
 * error, even "no such table", which would cost a reconnect per failed statement.
 */
import { ClientStateError } from "../errors.ts";
import {
  countIn,
  type ClientKind,
  type Connection,
  type ErrorSigns,
  type QueryParameter,
  type SendOutcome,
  type Statement,
} from "./clients.ts";
import { callQuery, namedQuery, type NamingClient } from "./pg-query.ts";

/** A connection checked out of a pg-style pool. */
interface PooledClient extends NamingClient {
  release(broken?: Error | boolean): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
  prependListener?(event: "error", listener: (error: Error) => void): unknown;
  listenerCount?(event: "error"): number;
  listeners?(event: "error"): readonly object[];
}

/** A pg-style pool, whose connections are checked out and given back. */
interface PoolLike {
  connect(): Promise<PooledClient>;
  connect(answer: (error: Error | null | undefined, client: PooledClient | undefined) => void): unknown;
}

/**
 * The state fields of pg's `Client`, the same in pg-native's and in the forks
 * inside Neon's driver and `@vercel/postgres` (pg 8.x throughout); read only
 * when they hold booleans, so another object with a `connect` method is left alone.
 */
interface ClientState {
  readonly _connecting?: unknown;
  readonly _connected?: unknown;
  readonly _ending?: unknown;
  readonly _queryable?: unknown;
}

const errors: ErrorSigns = {
  // pg refuses a statement on a connection that broke before it, without sending it; a Pool's next connection may do.
  notApplied: { messages: [/^Client has encountered a connection error and is not queryable$/] },
  inDoubt: { messages: [/connection terminated/i] },
  // Checked before a statement is queued.
  closed: { messages: [/^Client was closed and is not queryable$/] },
  // query_timeout.
  timedOut: { messages: [/^Query read timeout$/] },
};

const isPgStyle = (client: object): client is NamingClient =>
  typeof (client as Partial<NamingClient>).query === "function" &&
  typeof (client as Partial<PoolLike>).connect === "function";

/** A pg-style Pool: it counts its connections. */
export const pgPool: ClientKind = {
  driverFor(client) {
    if (!isPgStyle(client) || !("idleCount" in client && "totalCount" in client)) return undefined;
    const pool = client as unknown as PoolLike;
    return {
      prepares: true,
      acquire: () => pool.connect().then(checkedOut),
      changedRows: rowCountOf,
      ...(connectsAsPgPoolDoes(pool) && {
        send: (statement, params, prepared, outcome) => sendAlone(pool, statement, params, prepared, outcome),
      }),
    };
  },
  errors,
};

/** A pg-style Client: one connection, which the user connects and ends. */
export const pgClient: ClientKind = {
  driverFor(client) {
    if (!isPgStyle(client)) return undefined;
    const connection: Connection = {
      query(statement, params, prepared) {
        const problem = clientStateProblem(client);
        return problem === undefined
          ? namedQuery(client, statement, params, prepared)
          : Promise.reject(new ClientStateError(problem));
      },
      release() {},
    };
    return { prepares: true, acquire: () => connection, changedRows: rowCountOf };
  },
  errors,
};

/**
 * Whether `pool.connect` is its class's own (pg-pool's, a fork's, or one an instrumentation patched in): pg-pool's
 * own `query()` checks out with a callback, so that method takes one. A wrapper object's `connect` (a Proxy's, or
 * one set on the pool) may take a promise's way only, or hand out connections of its own: it is called without.
 */
function connectsAsPgPoolDoes(pool: PoolLike): boolean {
  const own: unknown = Object.getPrototypeOf(pool);
  return typeof own === "object" && own !== null && pool.connect === (own as PoolLike).connect;
}

/** How many rows a statement changed, from pg's result (its command's tag sets `rowCount`), if it says. */
const rowCountOf = countIn("rowCount");

/** Marks the error listeners of this library, of any copy of it (ESM beside CommonJS, two versions), on pooled clients. */
const POOLED_ERROR_LISTENER = Symbol.for("grammy-postgres-storage: a pooled client's error listener");

/** Whether anyone but this library listens for a client's errors. */
function heardElsewhere(client: PooledClient): boolean {
  const listeners = client.listeners?.("error");
  if (listeners === undefined) return (client.listenerCount?.("error") ?? 2) > 1;
  return listeners.some((listener) => !(POOLED_ERROR_LISTENER in listener));
}

// One connection object per pg client, made when it is first checked out: checkouts allocate nothing.
const connections = new WeakMap<PooledClient, PooledConnection>();
const checkedOut = (client: PooledClient): PooledConnection => {
  let connection = connections.get(client);
  if (connection === undefined) {
    connection = new PooledConnection(client);
    connections.set(client, connection);
  }
  connection.checkedOut();
  return connection;
};

/** A connection of a pg-style Pool, while this storage has it checked out. */
class PooledConnection implements Connection {
  readonly #client: PooledClient;
  #held = false;
  #lost: Error | undefined;
  /** Whether the client was checked out and given back before: then it is the pool's own, not a wrapper's per checkout. */
  #returned = false;
  /** Whether the error listener stays between checkouts. */
  #listening = false;
  // A checked-out client's errors are its holder's to handle (the pool listens only to idle ones): unheard, a
  // connection lost meanwhile would crash the process.
  readonly #onError = Object.assign(
    (error: Error) => {
      if (this.#held) this.#lost = error;
      // Between checkouts, an error no one else hears is thrown, as the client throws it with no listener at all: a
      // checkout of the user's own is left as it was.
      else if (!heardElsewhere(this.#client)) throw error;
    },
    { [POOLED_ERROR_LISTENER]: true },
  );

  constructor(client: PooledClient) {
    this.#client = client;
  }

  /** Starts a checkout: the client's errors are this storage's until it is given back. */
  checkedOut(): void {
    this.#held = true;
    this.#lost = undefined;
    // None at all at a checkout (the pool takes its own away) means that someone removed every listener, ours too.
    if (this.#listening && this.#client.listenerCount?.("error") !== 0) return;
    // First in line, so that it still sees a once-listener that is about to go.
    if (this.#client.prependListener === undefined) this.#client.on("error", this.#onError);
    else this.#client.prependListener("error", this.#onError);
    // Adding and removing the listener per checkout costs an allocation each time. Kept on a client that came back,
    // it stays one listener; a wrapper's object per checkout never comes back, and gives its listener back.
    this.#listening = this.#returned;
  }

  query(statement: Statement, params: QueryParameter[], prepared: boolean): PromiseLike<unknown> {
    return namedQuery(this.#client, statement, params, prepared);
  }

  release(broken?: unknown): void {
    this.#held = false;
    if (!this.#listening) {
      this.#client.removeListener("error", this.#onError);
      this.#returned = true;
    }
    this.#client.release(this.#lost ?? (broken instanceof Error ? broken : broken !== undefined));
  }
}

/**
 * A statement on a connection checked out of `pool` for it alone, and given back as it is answered: one promise for
 * the checkout, the statement and the release, where the promise form of `connect()` and a {@link PooledConnection}
 * cost one each.
 */
function sendAlone(
  pool: PoolLike,
  statement: Statement,
  params: QueryParameter[],
  prepared: boolean,
  outcome: SendOutcome,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const connected = once((error: unknown, client: PooledClient | undefined) => {
      // As pg-pool's promise form reads its callback: an error, whatever else comes with it, is a failed checkout.
      if (error || client === undefined) return reject(outcome.unsent(error || new Error("connect() gave no client")));
      const connection = checkedOut(client);
      const answered = once((failure: unknown, result: unknown) => {
        try {
          connection.release(failure && outcome.breaks(failure) ? failure : undefined);
        } catch (thrown) {
          // As a release in a finally block would: its error is the statement's (the pool's listeners may throw).
          return reject(thrown);
        }
        return failure ? reject(failure) : resolve(result);
      });
      try {
        callQuery(client, statement, params, prepared, answered);
      } catch (thrown) {
        // As a promise's executor would: a client (or a wrapper of it) that throws rejects, its connection given back.
        answered(thrown, undefined);
      }
    });
    const promised = pool.connect(connected);
    // A subclass's connect() that answers with a promise alone is answered by its promise.
    if (isThenable(promised)) {
      promised.then(
        (client) => client !== undefined && connected(null, client as PooledClient),
        (error: unknown) => connected(error, undefined),
      );
    }
  });
}

/** `answer`, called at most once: a wrapper may answer both by the callback and by a promise. */
function once<A, B>(answer: (first: A, second: B) => void): (first: A, second: B) => void {
  let pending = true;
  return (first, second) => {
    if (pending) {
      pending = false;
      answer(first, second);
    }
  };
}

/** Whether a value is a promise, or anything with a `then` a promise would follow. */
const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as PromiseLike<unknown> | undefined)?.then === "function";

/**
 * Why a pg-style Client cannot run a statement now, if it cannot. pg itself
 * rejects statements on an ended or broken Client, without saying that a
 * Client never reconnects; but it queues a statement on a Client that was
 * never connected until `connect()` is called, so the operation would wait
 * forever (and Node, with nothing else pending, exit with code 0 mid-update).
 * A Client whose `connect()` is under way is fine: pg sends the statement once connected.
 */
function clientStateProblem(client: object): string | undefined {
  const state = client as ClientState;
  if (state._ending === true) {
    return "the Client was ended (client.end()) and cannot run statements again: connect a new one, or pass a Pool";
  }
  if (state._queryable === false) {
    return "the Client lost its connection, and a Client never reconnects: connect a new one, or pass a Pool, which replaces lost connections";
  }
  if (state._connected === false && state._connecting === false) {
    return "the Client is not connected, and would wait forever: call await client.connect() first, or pass a Pool";
  }
  return undefined;
}
