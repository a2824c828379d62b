import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { startFaultProxy, type FaultProxy } from "../../dev/fault-proxy.js";
import { databaseUrl } from "../support/clients.js";

/** A fault proxy in front of the suite's database and a pg Pool through it, for the calling describe block. */
export function useProxiedPool(
  poolSize: number,
  random?: () => number,
): { readonly proxy: FaultProxy; readonly pool: pg.Pool } {
  const handles = {} as { proxy: FaultProxy; pool: pg.Pool };
  beforeAll(async () => {
    handles.proxy = await startFaultProxy(databaseUrl(), random);
    handles.pool = new pg.Pool({ connectionString: handles.proxy.url, max: poolSize });
    handles.pool.on("error", () => {}); // idle clients cut by the proxy: the pool replaces them
  });
  afterAll(async () => {
    await handles.pool.end();
    await handles.proxy.stop();
  });
  return handles;
}
