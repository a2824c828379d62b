export { PostgresStorage, type PostgresStorageOptions } from "./storage.js";
export { createTableSql } from "./table.js";
export { prefixKeys, type KeyBuilder, type KeyBuilderOption } from "./keys.js";
export type { Codec } from "./codec.js";
export type { PostgresClient, QueryClient, QueryParameter, UnsafeQueryClient } from "./clients.js";
export { PostgresStorageError } from "./errors.js";
