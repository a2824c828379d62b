import { expect } from "vitest";
import { PostgresStorageError } from "../../src/index.ts";

/** The error an operation rejects with (it must reject with a PostgresStorageError). */
export async function rejection(operation: Promise<unknown>): Promise<PostgresStorageError> {
  const error = await operation.then(
    () => expect.fail("resolved instead of rejecting"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PostgresStorageError);
  return error as PostgresStorageError;
}
