import { describe, expect, it } from "vitest";

import { clampedInt } from "./format";

describe("clampedInt", () => {
  it("keeps a typed number within its bounds and reports an empty field", () => {
    expect(clampedInt("7", 1, 50)).toBe(7);
    expect(clampedInt("80", 1, 50)).toBe(50);
    expect(clampedInt("0", 1, 50)).toBe(1);
    expect(clampedInt("-3", 1, 8)).toBe(1);
    expect(clampedInt("", 1, 8)).toBeNull();
    expect(clampedInt("abc", 1, 8)).toBeNull();
  });
});
