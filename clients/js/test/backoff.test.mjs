// The backoff itself (no server): full jitter within [0, min(cap, base * 2^attempt)).
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../hearth-client.js";

test("backoff: full jitter below min(cap, base * 2^attempt), spread over the whole range", () => {
  for (const [attempt, bound] of [
    [0, 500],
    [1, 1000],
    [3, 4000],
    [6, 20000],
    [40, 20000],
  ]) {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(attempt, 500, 20000));
    assert.ok(delays.every((d) => d >= 0 && d < bound), `attempt ${attempt}`);
    assert.ok(Math.min(...delays) < bound * 0.05 && Math.max(...delays) > bound * 0.95, `attempt ${attempt}`);
  }
  assert.ok(backoffDelay(2) < 2000); // the defaults: base 500 ms, cap 20 s
});
