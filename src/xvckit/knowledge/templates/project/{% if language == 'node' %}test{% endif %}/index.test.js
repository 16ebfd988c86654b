import assert from "node:assert/strict";
import { test } from "node:test";

import { greeting } from "../src/index.js";

test("greeting names who it greets", () => {
  assert.equal(greeting("Ada"), "Hello, Ada!");
});
