/**
 * Whether statements go prepared: where the client can, and until a pooler
 * behind it shows that it loses prepared statements. A pooler that hands each
 * transaction another server connection loses them: there the statement "does
 * not exist" (26000), or another client's of the same name "already exists"
 * (42P05). Either way it did not run, and goes again unprepared.
 */
import { sqlState } from "./error-reading.ts";

const PREPARED_STATEMENT_LOST = new Set(["26000", "42P05"]);
// Clients behind such a pooler, so that a storage created later on one (one per request, say) starts unprepared.
const LOST_PREPARATIONS = new WeakSet<object>();

/** Whether one driver prepares its statements. */
export class Preparing {
  readonly #client: object;
  #on: boolean;

  /**
   * @param client the user's client
   * @param wanted whether the storage and the client prepare
   */
  constructor(client: object, wanted: boolean) {
    this.#client = client;
    this.#on = wanted && !LOST_PREPARATIONS.has(client);
  }

  /** Whether the next statement goes prepared. */
  get on(): boolean {
    return this.#on;
  }

  /** Whether a prepared statement's `error` says its preparation was lost; if so, no statement on the client is prepared again. */
  lost(error: unknown): boolean {
    if (!PREPARED_STATEMENT_LOST.has(sqlState(error) ?? "")) return false;
    this.#on = false;
    LOST_PREPARATIONS.add(this.#client);
    return true;
  }
}
