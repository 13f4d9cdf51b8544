import { describe, expect, it } from "vitest";

import { translator } from "../i18n";
import { installFetch, json } from "../test/fakeFetch";
import { ApiError, search } from "./api";
import { describeError, errorText } from "./errors";

const ko = translator("ko");
const en = translator("en");

describe("error texts", () => {
  it("word a known code in Korean with its values, never the server's English", () => {
    const error = new ApiError(413, "request_too_large", "The request body is over the limit of 8 MB.", {
      limit_mb: 8,
    });
    expect(describeError(error, ko)).toEqual({
      title: "error.tooLarge",
      detail: "요청이 8 MB 한도를 넘습니다. 파일을 나눠 올려 주세요.",
      hint: null,
    });
    expect(errorText(error, en)).toBe("The request is over the limit of 8 MB; send fewer or smaller files.");
  });

  it("keep the server's English in the English UI where its message names what params do not", () => {
    const error = new ApiError(413, "question_too_long", "The question is 5000 characters; the limit is 4000.");
    expect(errorText(error, ko)).toBe("질문이 너무 깁니다.");
    expect(errorText(error, en)).toBe("The question is 5000 characters; the limit is 4000.");
  });

  it("show a generic Korean text with the code for a code the UI does not know", () => {
    const error = { code: "brand_new", message: "Something new failed." };
    expect(errorText(error, ko)).toBe("알 수 없는 오류입니다 (코드: brand_new).");
    expect(errorText(error, en)).toBe("Something new failed.");
  });

  it("name the fields of an invalid request in Korean; the English message names them already", () => {
    const error = {
      code: "invalid_input",
      message: "Invalid request: query: String should have at least 1 character",
      params: { fields: "query" },
    };
    expect(errorText(error, ko)).toBe("요청 내용이 올바르지 않습니다. 확인할 항목: query.");
    expect(errorText(error, en)).toBe("Invalid request: query: String should have at least 1 character");
  });

  it("name the one field the app's own checks refused", () => {
    const error = {
      code: "invalid_input",
      message: "device must be auto, cpu or cuda:N, got 'gpu'.",
      params: { field: "device" },
    };
    expect(errorText(error, ko)).toBe("요청 내용이 올바르지 않습니다. 확인할 항목: device.");
    expect(errorText(error, en)).toBe("device must be auto, cpu or cuda:N, got 'gpu'.");
  });

  it("say nothing more for a failed connection than the heading and the hint", () => {
    const problem = describeError(new ApiError(0, "network_error", "The server could not be reached."), ko);
    expect(problem).toEqual({ title: "error.network", detail: null, hint: "error.networkHint" });
  });

  it("keep a failure of the browser's own code Korean in the Korean UI", () => {
    expect(describeError(new TypeError("x is undefined"), ko).detail).toBe("예기치 않은 오류가 났습니다.");
    expect(describeError(new TypeError("x is undefined"), en).detail).toBe("x is undefined");
  });

  it("read params from the error body, and ignore params that are not plain values", async () => {
    installFetch({
      "POST /api/search": () =>
        json({ error: { code: "invalid_input", message: "Invalid request", params: { fields: "query" } } }, 422),
    });
    const error = await search({ query: "x" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "invalid_input", params: { fields: "query" } });

    installFetch({
      "POST /api/search": () => json({ error: { code: "invalid_input", message: "m", params: { a: [1] } } }, 422),
    });
    expect(await search({ query: "x" }).catch((e: unknown) => e)).toMatchObject({ params: {} });
  });
});
