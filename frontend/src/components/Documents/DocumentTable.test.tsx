import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { installFetch, json, STATUS } from "../../test/fakeFetch";
import { renderApp } from "../../test/render";

const doc = (n: number, collection = "default") => ({
  id: `d${n}`,
  collection,
  source: `문서${n}.txt`,
  title: `문서 ${n}`,
  status: "ready",
  error: null,
  chunk_count: 1,
  size_bytes: 100,
  metadata: {},
  created_at: "2025-03-01T09:00:00Z",
  updated_at: "2025-03-01T09:00:00Z",
});

/** Five documents, newest first, served two a page as the backend does: the cursor is where a page ended. */
function backend() {
  const documents = [5, 4, 3, 2, 1].map((n) => doc(n));
  return installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/status": () => json(STATUS),
    "GET /api/collections": () => json({ collections: ["default"] }),
    "GET /api/documents": (request) => {
      const cursor = new URL(request.url).searchParams.get("cursor");
      const start = cursor ? documents.findIndex((d) => d.id === cursor) + 1 : 0;
      const page = documents.slice(start, start + 2);
      const more = start + 2 < documents.length;
      return json({ documents: page, total: documents.length, next_cursor: more ? page.at(-1)!.id : null });
    },
    "GET /api/documents/d1": () => json(doc(1)),
    "DELETE /api/documents/d5": () => new Response(null, { status: 204 }),
  });
}

const titles = (table: HTMLElement) =>
  within(table)
    .getAllByRole("row")
    .slice(1)
    .map((row) => row.querySelector(".doc-name")?.textContent);

describe("document table pages", () => {
  it("shows the total and loads the next page until the last", async () => {
    const calls = backend();
    const { user } = renderApp("/documents");
    const table = await screen.findByRole("table");
    expect(titles(table)).toEqual(["문서 5", "문서 4"]);
    expect(screen.getByRole("heading", { name: /색인된 문서/ })).toHaveTextContent("5개");
    expect(screen.getByText("전체 5개 중 2개")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "더 보기" }));
    await waitFor(() => expect(titles(screen.getByRole("table"))).toHaveLength(4));
    await user.click(screen.getByRole("button", { name: "더 보기" }));
    await waitFor(() =>
      expect(titles(screen.getByRole("table"))).toEqual(["문서 5", "문서 4", "문서 3", "문서 2", "문서 1"]),
    );

    expect(screen.queryByRole("button", { name: "더 보기" })).not.toBeInTheDocument();
    expect(screen.queryByText(/전체 5개 중/)).not.toBeInTheDocument();
    const cursors = calls
      .filter((c) => new URL(c.url).pathname === "/api/documents")
      .map((c) => new URL(c.url).searchParams.get("cursor"));
    expect(cursors).toEqual([null, "d4", "d2"]);
  });

  it("shows a cited document that is not on the pages loaded yet, marked, first", async () => {
    backend();
    renderApp("/documents?doc=d1");
    const row = (await screen.findByText("문서 1", { selector: ".doc-name" })).closest("tr")!;
    expect(row).toHaveClass("is-highlighted");
    expect(titles(screen.getByRole("table"))).toEqual(["문서 1", "문서 5", "문서 4"]);
    expect(screen.getByText("전체 5개 중 2개")).toBeInTheDocument();
  });

  it("deletes a document only once the confirmation is accepted, Cancel focused first", async () => {
    const calls = backend();
    const { user } = renderApp("/documents");
    await screen.findByRole("table");
    const deletes = () =>
      calls.filter((c) => c.method === "DELETE").map((c) => new URL(c.url).pathname + new URL(c.url).search);

    await user.click(screen.getByRole("button", { name: "‘문서 5’ 삭제" }));
    let dialog = screen.getByRole("dialog", { name: "문서를 삭제할까요?" });
    expect(within(dialog).getByRole("button", { name: "취소" })).toHaveFocus();
    await user.click(within(dialog).getByRole("button", { name: "취소" }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(deletes()).toEqual([]);

    await user.click(screen.getByRole("button", { name: "‘문서 5’ 삭제" }));
    dialog = screen.getByRole("dialog", { name: "문서를 삭제할까요?" });
    await user.click(within(dialog).getByRole("button", { name: "삭제" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(deletes()).toEqual(["/api/documents/d5?collection=default"]);
  });

  it("deletes the document of its own collection when two collections hold the same id", async () => {
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
      "GET /api/collections": () => json({ collections: ["a", "b"] }),
      "GET /api/documents": () =>
        json({ documents: [{ ...doc(7, "b"), title: "나 문서" }, doc(7, "a")], total: 2, next_cursor: null }),
      "DELETE /api/documents/d7": () => new Response(null, { status: 204 }),
    });
    const { user } = renderApp("/documents");
    await screen.findByRole("table");
    await user.click(screen.getByRole("button", { name: "‘나 문서’ 삭제" }));
    const dialog = screen.getByRole("dialog", { name: "문서를 삭제할까요?" });
    await user.click(within(dialog).getByRole("button", { name: "삭제" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    const deletes = calls.filter((c) => c.method === "DELETE").map((c) => new URL(c.url).search);
    expect(deletes).toEqual(["?collection=b"]);
  });

  it("asks for a cited document in the collection the citation names", async () => {
    const calls = backend();
    renderApp("/documents?doc=d1&collection=default");
    await screen.findByText("문서 1", { selector: ".doc-name" });
    const asked = calls.filter((c) => new URL(c.url).pathname === "/api/documents/d1");
    expect(asked.map((c) => new URL(c.url).searchParams.get("collection"))).toEqual(["default"]);
  });
});
