import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { PostgresStorage, createTableSql } from "../src/index.js";
import { databaseUrl, tableExists } from "./support/clients.js";
import { useTables } from "./support/fixture.js";

// createTableSql() is what migrations run; with a schema in the name it must create the schema too,
// as the storage's own lazy creation does, or it fails with 3F000 on a database without that schema.
describe("createTableSql", () => {
  const { admin, schema: freshSchema } = useTables();

  it("is one CREATE TABLE statement without a schema, and CREATE SCHEMA; CREATE TABLE with one", () => {
    expect(createTableSql("sessions")).toMatch(/^CREATE TABLE IF NOT EXISTS "sessions" \(/);
    expect(createTableSql("sessions")).not.toContain(";");
    const sql = createTableSql("app.sessions");
    expect(sql).toMatch(/^CREATE SCHEMA IF NOT EXISTS "app";\nCREATE TABLE IF NOT EXISTS "app"\."sessions" \(/);
    expect(sql.split(";")).toHaveLength(2);
  });

  it("creates schema and table on a database without that schema (pg, several statements in one query), and runs again as a no-op", async () => {
    const schema = freshSchema("ddl_pg");
    const sql = createTableSql(`${schema}.sessions`);
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      // Without the schema, the table statement alone fails as it used to.
      await expect(pool.query(sql.slice(sql.indexOf("\n") + 1))).rejects.toMatchObject({ code: "3F000" });
      await pool.query(sql);
      await pool.query(sql);
      expect(await tableExists(admin, `${schema}.sessions`)).toBe(true);
      // The table is the one the storage expects.
      const storage = new PostgresStorage<{ n: number }>({
        client: pool,
        tableName: `${schema}.sessions`,
        createTable: false,
      });
      await storage.write("k", { n: 1 });
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
      expect(await storage.update("k", { n: 2 })).toStrictEqual({ n: 2 });
    } finally {
      await pool.end();
    }
  });

  it("runs through postgres.js's unsafe() without parameters", async () => {
    const schema = freshSchema("ddl_pgjs");
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(createTableSql(`${schema}.sessions`));
      expect(await tableExists(admin, `${schema}.sessions`)).toBe(true);
    } finally {
      await sql.end();
    }
  });

  it("runs through PGlite's exec()", async () => {
    const db = await PGlite.create();
    try {
      await db.exec(createTableSql("app.sessions"));
      await db.exec(createTableSql("app.sessions"));
      const storage = new PostgresStorage<number>({ client: db, tableName: "app.sessions", createTable: false });
      await storage.write("k", 1);
      expect(await storage.read("k")).toBe(1);
    } finally {
      await db.close();
    }
  });
});
