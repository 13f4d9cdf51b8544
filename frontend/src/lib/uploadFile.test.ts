import { describe, expect, it } from "vitest";

import { installXhr } from "../test/fakeXhr";
import { ApiError, uploadFile } from "./api";
import type { UploadResult } from "./types";

const rejected: UploadResult = {
  filename: "a.exe",
  document_id: null,
  outcome: "rejected",
  chunks: 0,
  error: { code: "unsupported_type", message: "Cannot read .exe files." },
};

describe("uploadFile", () => {
  it("asks for a job and answers its id", async () => {
    const sent = installXhr(() => ({ status: 202, body: { job_id: "j1" } }));
    const fractions: number[] = [];
    const answer = await uploadFile(new File(["내용"], "a.md"), {
      collection: "규정",
      onProgress: (fraction) => fractions.push(fraction),
    });
    expect(answer).toEqual({ jobId: "j1" });
    expect(sent[0]).toMatchObject({ method: "POST", url: "/api/documents?wait=false" });
    expect(sent[0]!.body.get("collection")).toBe("규정");
    expect(fractions).toEqual([1]);
  });

  it("takes the results of a backend that indexes the upload before answering, refusals included", async () => {
    installXhr(() => ({ status: 415, body: { results: [rejected] } }));
    expect(await uploadFile(new File(["MZ"], "a.exe"))).toEqual({ results: [rejected] });
  });

  it("fails with the backend's error when the answer has neither", async () => {
    installXhr(() => ({ status: 413, body: { error: { code: "request_too_large", message: "Too big." } } }));
    const error = await uploadFile(new File(["x"], "a.md")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 413, code: "request_too_large" });
    installXhr(() => ({ status: 202, body: {} }));
    expect(await uploadFile(new File(["x"], "a.md")).catch((e: unknown) => e)).toMatchObject({ code: "http_error" });
  });
});
