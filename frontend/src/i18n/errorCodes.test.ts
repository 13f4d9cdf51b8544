/**
 * Every error code the backend can send has a Korean and an English text.
 *
 * `error-codes.json` is written by the backend's tests (`backend/tests/core/test_error_codes.py`) from
 * the codes in `backend/app`, each with the params that every emission of it carries. A text may use
 * only those as placeholders; English may also quote the server's own message, Korean never does.
 */
import { describe, expect, it } from "vitest";

import { CLIENT_ERROR_CODES } from "../lib/errors";
import { en } from "./en";
import listed from "./error-codes.json";
import { ko } from "./ko";

const backend: Record<string, string[]> = listed;
const codes: Record<string, string[]> = {
  ...backend,
  ...Object.fromEntries(CLIENT_ERROR_CODES.map((code) => [code, []])),
};
const PREFIX = "errorCode.";

function placeholders(text: string): string[] {
  return [...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
}

function textOf(messages: Record<string, string>, code: string): string | undefined {
  return messages[`${PREFIX}${code}`];
}

describe("error codes", () => {
  it("lists the backend's codes", () => {
    // A list emptied by mistake would make every other check pass.
    expect(Object.keys(backend)).toEqual(expect.arrayContaining(["invalid_input", "internal_error", "not_found"]));
  });

  it.each(Object.keys(codes))("%s has a Korean and an English text", (code) => {
    expect(textOf(ko, code), `ko.ts lacks "${PREFIX}${code}"`).toBeTruthy();
    expect(textOf(en, code), `en.ts lacks "${PREFIX}${code}"`).toBeTruthy();
  });

  it.each(Object.entries(codes))("%s fills only the values it is sent", (code, params) => {
    expect(params).toEqual(expect.any(Array));
    for (const name of placeholders(textOf(ko, code) ?? "")) expect(params).toContain(name);
    for (const name of placeholders(textOf(en, code) ?? "")) expect([...params, "message"]).toContain(name);
  });

  it("has no text for a code that nothing sends", () => {
    const texts = Object.keys(ko).filter((key) => key.startsWith(PREFIX));
    const stale = texts.map((key) => key.slice(PREFIX.length)).filter((code) => !(code in codes));
    expect(stale).toEqual([]);
  });
});
