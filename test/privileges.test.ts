import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PostgresStorage, PostgresStorageError, createTableSql, type PostgresClient } from "../src/index.js";
import { adminPool, databaseUrl, uniqueTable } from "./support/clients.js";

/** The storage's error for an operation that must fail. */
async function refusal(operation: Promise<unknown>): Promise<PostgresStorageError> {
  const error = await operation.then(
    () => {
      throw new Error("resolved instead of failing for lack of a privilege");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PostgresStorageError);
  return error as PostgresStorageError;
}

/**
 * Creating the table as a role that lacks a privilege: the hint names the
 * statement that failed. `asRole` is a client acting as the role; `admin`
 * runs SQL as a superuser; both on the same database.
 */
function privilegeCases(
  open: () => { asRole: () => PostgresClient; admin: (sql: string) => Promise<unknown>; role: () => string },
) {
  it("a schema that does not exist, and no CREATE on the database: the hint says to create the schema or grant CREATE on the database", async () => {
    const { asRole, admin, role } = open();
    const schema = uniqueTable("noschema");
    try {
      const storage = new PostgresStorage<number>({ client: asRole(), tableName: `${schema}.sessions`, retry: false });
      const attempts: [string, () => Promise<unknown>][] = [
        ['write of key "k" in table', () => storage.write("k", 1)],
        ["createTable of table", () => storage.createTable()],
      ];
      for (const [said, attempt] of attempts) {
        const error = await refusal(attempt());
        expect(error.code).toBe("42501");
        expect(error.message.startsWith(`${said} "${schema}"."sessions" failed`)).toBe(true);
        expect(error.message).toMatch(/ failed( creating the table)?: permission denied for database/);
        expect(error.message).toContain(`Schema "${schema}" does not exist and this role may not create schemas`);
        expect(error.message).toContain(
          `CREATE SCHEMA "${schema}"; GRANT USAGE, CREATE ON SCHEMA "${schema}" to this role`,
        );
        expect(error.message).toContain("GRANT CREATE ON DATABASE to this role");
        // Not the hint for a schema that exists, which could not be followed.
        expect(error.message).not.toContain(`GRANT CREATE ON SCHEMA "${schema}"`);
      }
      // Following the hint works.
      await admin(`CREATE SCHEMA "${schema}"; GRANT USAGE, CREATE ON SCHEMA "${schema}" TO "${role()}"`);
      await storage.write("k", 2);
      expect(await storage.read("k")).toBe(2);
    } finally {
      await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it("a schema that exists, without CREATE on it: the hint grants CREATE on that schema", async () => {
    const { asRole, admin, role } = open();
    const schema = uniqueTable("locked");
    try {
      await admin(`CREATE SCHEMA "${schema}"; GRANT USAGE ON SCHEMA "${schema}" TO "${role()}"`);
      const storage = new PostgresStorage<number>({ client: asRole(), tableName: `${schema}.sessions`, retry: false });
      const error = await refusal(storage.write("k", 1));
      expect(error.code).toBe("42501");
      expect(
        error.message.startsWith(`write of key "k" in table "${schema}"."sessions" failed creating the table: `),
      ).toBe(true);
      expect(error.message).toContain("permission denied for schema");
      expect(error.operation).toBe("write");
      expect(error.message).toContain(
        `GRANT CREATE ON SCHEMA "${schema}" to this role, or run createTableSql("${schema}.sessions") as the owner and pass createTable: false`,
      );
      expect(error.message).not.toContain("CREATE ON DATABASE");
      await admin(`GRANT CREATE ON SCHEMA "${schema}" TO "${role()}"`);
      await storage.write("k", 2);
      expect(await storage.read("k")).toBe(2);
    } finally {
      await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it("createTableSql() of a schema.table needs CREATE on the database even when the schema exists (as documented); createTable() does not", async () => {
    const { asRole, admin, role } = open();
    const schema = uniqueTable("owned");
    try {
      await admin(`CREATE SCHEMA "${schema}"; GRANT USAGE, CREATE ON SCHEMA "${schema}" TO "${role()}"`);
      const client = asRole() as { query(text: string): Promise<unknown> };
      await expect(client.query(createTableSql(`${schema}.sessions`))).rejects.toMatchObject({ code: "42501" });
      await new PostgresStorage({ client: asRole(), tableName: `${schema}.sessions` }).createTable();
    } finally {
      await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });
}

// PGlite behind the suite's socket server is one backend shared by every connection, which
// connects as whatever user it is told to and stays superuser: no login role can be tried there.
// The same cases run below on an in-process PGlite of their own, through SET ROLE.
describe.skipIf(inject("backend") === "pglite")(
  "creating the table as a login role without the privilege (PostgreSQL server)",
  () => {
    const { admin, close } = adminPool();
    const role = uniqueTable("role");
    let pool: pg.Pool;

    beforeAll(async () => {
      await admin(`CREATE ROLE "${role}" LOGIN`);
      const url = new URL(databaseUrl());
      url.username = role;
      url.password = "";
      pool = new pg.Pool({ connectionString: url.href, max: 2 });
      const [row] = (await pool.query<{ user: string }>("SELECT current_user AS user")).rows;
      expect(row?.user).toBe(role);
    });
    afterAll(async () => {
      await pool?.end();
      await admin(`DROP OWNED BY "${role}"`).catch(() => {});
      await admin(`DROP ROLE IF EXISTS "${role}"`);
      await close();
    });

    privilegeCases(() => ({ asRole: () => pool, admin: (sql) => admin(sql), role: () => role }));
  },
);

describe("creating the table as a role without the privilege (in-process PGlite, SET ROLE)", () => {
  const role = "gps_test_role";
  let db: PGlite;

  beforeAll(async () => {
    db = await PGlite.create();
    await db.exec(`CREATE ROLE "${role}"`);
  });
  afterAll(() => db.close());

  /** Runs as the role; the storage's statements are sent one at a time, so switching per statement is safe. */
  async function asRole<R>(run: () => Promise<R>): Promise<R> {
    await db.exec(`SET ROLE "${role}"`);
    try {
      return await run();
    } finally {
      await db.exec("RESET ROLE");
    }
  }

  privilegeCases(() => ({
    asRole: () => ({
      // exec() for createTableSql's statements in one string (PGlite's query() takes one), query() for the storage's.
      query: (text: string, params?: unknown[]) =>
        asRole<{ rows: readonly unknown[] } | readonly unknown[]>(() =>
          params === undefined ? db.exec(text) : db.query(text, params),
        ),
    }),
    admin: (sql) => db.exec(sql),
    role: () => role,
  }));
});
