import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (file: string) =>
  JSON.parse(readFileSync(new URL(`../${file}`, import.meta.url), "utf8")) as Record<string, unknown>;

describe("jsr.json beside package.json", () => {
  const npm = read("package.json");
  const jsr = read("jsr.json");

  it("publishes the same version to JSR as to npm", () => {
    expect(jsr.version).toBe(npm.version);
  });

  it("keeps the npm name as the JSR package name, and exports the source with its README and license", () => {
    expect(jsr.name).toMatch(new RegExp(`^@[a-z0-9-]+/${String(npm.name)}$`));
    expect(jsr.license).toBe(npm.license);
    expect(jsr.exports).toBe("./src/index.ts");
    expect((jsr.publish as { include: string[] }).include).toEqual(expect.arrayContaining(["README.md", "LICENSE"]));
  });
});
