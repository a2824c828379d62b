export { PostgresStorage } from "./storage.ts";
export type { PostgresStorageOptions } from "./options.ts";
export { createTableSql } from "./table.ts";
export { migrateFromStoragePsqlSql, type StoragePsqlMigrationOptions } from "./migrate.ts";
export { prefixKeys, type KeyBuilder, type KeyBuilderOption } from "./keys.ts";
export { sessionKey, type SessionKeyContext, type SessionKeyOptions, type SessionKeyStrategy } from "./session-key.ts";
export type { Codec, CodecContext, LayeredCodec } from "./codec.ts";
export { jsonWithDates } from "./dates-codec.ts";
export { encryptedCodec, type EncryptedCodecOptions } from "./encrypted-codec.ts";
export { compressedCodec, type CompressedCodecOptions } from "./compressed-codec.ts";
export type { InferOutput, StandardIssue, StandardResult, StandardSchema } from "./schema.ts";
export type { InvalidValue, OnInvalid } from "./values.ts";
export type { ConflictResolver, OnConflict, WriteConflict } from "./write-back.ts";
export type { RetryOptions } from "./retry.ts";
export type {
  OperationEvent,
  SpanLike,
  StatementEvent,
  StorageEvent,
  TracerLike,
  WriteOutcome,
} from "./observe.ts";
export type { PostgresClient, QueryClient, QueryParameter, UnsafeQueryClient } from "./driver/clients.ts";
export {
  PostgresStorageError,
  StorageConflictError,
  StorageOptionError,
  StorageValidationError,
  type ErrorDetails,
  type Operation,
} from "./errors.ts";
