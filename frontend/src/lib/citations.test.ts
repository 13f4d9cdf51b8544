import { describe, expect, it } from "vitest";

import { citedNumbers, splitCitations } from "./citations";

const known = new Set([1, 2, 3]);

describe("splitCitations", () => {
  it("turns known [n] into citations and keeps the text around them", () => {
    expect(splitCitations("휴가는 15일입니다[1]. 이월됩니다[2].", known)).toEqual([
      { kind: "text", text: "휴가는 15일입니다" },
      { kind: "cite", number: 1 },
      { kind: "text", text: ". 이월됩니다" },
      { kind: "cite", number: 2 },
      { kind: "text", text: "." },
    ]);
  });

  it("splits grouped and adjacent citations into one citation each", () => {
    expect(splitCitations("A [1, 3] B [2][3]", known)).toEqual([
      { kind: "text", text: "A " },
      { kind: "cite", number: 1 },
      { kind: "cite", number: 3 },
      { kind: "text", text: " B " },
      { kind: "cite", number: 2 },
      { kind: "cite", number: 3 },
    ]);
  });

  it("leaves unknown numbers, brackets that are not citations and a half-streamed [ as text", () => {
    expect(splitCitations("배열 a[0]과 [9], 그리고 [1", known)).toEqual([
      { kind: "text", text: "배열 a[0]과 [9], 그리고 [1" },
    ]);
    expect(splitCitations("[1, 9]", known)).toEqual([
      { kind: "cite", number: 1 },
      { kind: "text", text: "[9]" },
    ]);
  });

  it("returns nothing for an empty answer", () => {
    expect(splitCitations("", known)).toEqual([]);
  });
});

describe("citedNumbers", () => {
  it("lists cited sources once each, in order of first use", () => {
    expect(citedNumbers("x [2] y [1][2] z [7]", known)).toEqual([2, 1]);
  });
});
