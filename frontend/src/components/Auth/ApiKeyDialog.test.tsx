import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { uploadFile } from "../../lib/api";
import { installFetch, json } from "../../test/fakeFetch";
import { installXhr } from "../../test/fakeXhr";
import { renderApp } from "../../test/render";

const KEY = "rag_0123456789ab_secret";

/** A server that needs `KEY`: anything else gets its 401. */
function keyed(body: unknown) {
  return (request: Request) => {
    const sent = request.headers.get("Authorization");
    if (sent === null) return json({ error: { code: "auth_required", message: "needs a key" } }, 401);
    if (sent !== `Bearer ${KEY}`) return json({ error: { code: "auth_invalid", message: "bad key" } }, 401);
    return json(body);
  };
}

function installKeyedServer() {
  return installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/documents": keyed({ documents: [], total: 0, next_cursor: null }),
    "GET /api/collections": keyed({ collections: [] }),
  });
}

describe("API key dialog", () => {
  it("asks for a key on a 401, keeps it and signs the requests after", async () => {
    const calls = installKeyedServer();
    const { user } = renderApp("/documents");

    const dialog = await screen.findByRole("dialog", { name: "API 키" });
    expect(within(dialog).getByRole("alert")).toHaveTextContent("API 키가 있어야");
    await user.type(within(dialog).getByLabelText("API 키"), KEY);
    await user.click(within(dialog).getByRole("button", { name: "키 저장" }));

    expect(await screen.findByText("아직 문서가 없습니다. 위에서 파일을 올려 보세요.")).toBeInTheDocument();
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(localStorage.getItem("rag.apiKey")).toBe(KEY);
    const signed = calls.filter((c) => c.url.endsWith("/api/documents") && c.headers.get("Authorization"));
    expect(signed.at(-1)?.headers.get("Authorization")).toBe(`Bearer ${KEY}`);
  });

  it("says when the stored key was refused", async () => {
    localStorage.setItem("rag.apiKey", "rag_revoked");
    installKeyedServer();
    renderApp("/documents");
    const dialog = await screen.findByRole("dialog", { name: "API 키" });
    expect(within(dialog).getByRole("alert")).toHaveTextContent("받아들여지지 않았습니다");
  });

  it("changes or forgets the key from the header", async () => {
    localStorage.setItem("rag.apiKey", KEY);
    installKeyedServer();
    const { user } = renderApp("/documents");
    await screen.findByText("아직 문서가 없습니다. 위에서 파일을 올려 보세요.");

    await user.click(screen.getByRole("button", { name: "API 키" }));
    const dialog = await screen.findByRole("dialog", { name: "API 키" });
    expect(within(dialog).getByLabelText("API 키")).toHaveValue(KEY);
    await user.click(within(dialog).getByRole("button", { name: "키 지우기" }));

    expect(localStorage.getItem("rag.apiKey")).toBeNull();
    // The screen reloads without a key, and the server asks for one again.
    const asked = await screen.findByRole("dialog", { name: "API 키" });
    await waitFor(() => expect(within(asked).getByRole("alert")).toHaveTextContent("API 키가 있어야"));
  });

  it("signs uploads too", async () => {
    localStorage.setItem("rag.apiKey", KEY);
    const sent = installXhr(() => ({ status: 202, body: { job_id: "job_1" } }));
    await expect(uploadFile(new File(["# 문서"], "a.md"))).resolves.toEqual({ jobId: "job_1" });
    expect(sent[0]?.headers).toEqual({ Authorization: `Bearer ${KEY}` });
  });
});
