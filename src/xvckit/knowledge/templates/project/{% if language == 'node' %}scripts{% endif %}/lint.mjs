// Lint without a download: every source file must parse (`node --check`). Swap in ESLint when
// the team wants rules.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const skip = new Set(["node_modules", ".git"]);
function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/\.(m?js|cjs)$/.test(entry.name)) yield path;
  }
}
let checked = 0;
for (const file of sources(".")) {
  execFileSync(process.execPath, ["--check", file], { stdio: "inherit" });
  checked += 1;
}
console.log(`lint: ${checked} files parse`);
