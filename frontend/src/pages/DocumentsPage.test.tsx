import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { installFetch, json, STATUS } from "../test/fakeFetch";
import { renderApp } from "../test/render";

const doc = (id: string, title: string, chunks: number) => ({
  id,
  collection: "default",
  source: `${title}.md`,
  title,
  status: "ready",
  error: null,
  chunk_count: chunks,
  size_bytes: 2048,
  metadata: {},
  created_at: "2025-03-01T09:00:00Z",
  updated_at: "2025-03-01T09:00:00Z",
});

function backend() {
  let documents = [doc("d1", "취업규칙", 12), doc("d2", "복리후생", 3)];
  const calls = installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/status": () => json(STATUS),
    "GET /api/collections": () => json({ collections: ["default"] }),
    "GET /api/documents": () => json({ documents }),
    "DELETE /api/documents/d1": () => {
      documents = documents.filter((d) => d.id !== "d1");
      return new Response(null, { status: 204 });
    },
    "POST /api/search": async (request) => {
      const { mode } = (await request.json()) as { mode: string };
      return json({
        results: [
          {
            document_id: "d1",
            chunk_id: `${mode}-1`,
            text: `${mode} 첫 구절`,
            score: 0.9,
            metadata: { title: "취업규칙" },
          },
          {
            document_id: "d2",
            chunk_id: `${mode}-2`,
            text: `${mode} 둘째 구절`,
            score: 0.45,
            metadata: { title: "복리후생" },
          },
        ],
      });
    },
  });
  return calls;
}

describe("documents screen", () => {
  it("lists documents and deletes one after confirmation", async () => {
    const calls = backend();
    const { user } = renderApp("/documents");
    const table = await screen.findByRole("table");
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(within(table).getByText("취업규칙")).toBeInTheDocument();
    expect(within(table).getByText("12")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "‘취업규칙’ 삭제" }));
    const dialog = screen.getByRole("dialog", { name: "문서를 삭제할까요?" });
    expect(dialog).toHaveTextContent("청크 12개");
    await user.click(within(dialog).getByRole("button", { name: "삭제" }));

    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    await waitFor(() => expect(within(screen.getByRole("table")).queryByText("취업규칙")).not.toBeInTheDocument());
    expect(calls.some((c) => c.method === "DELETE" && c.url.endsWith("/api/documents/d1?collection=default"))).toBe(
      true,
    );
  });

  it("marks the document a citation pointed to", async () => {
    backend();
    renderApp("/documents?doc=d2");
    const row = (await screen.findByText("복리후생", { selector: ".doc-name" })).closest("tr")!;
    expect(row).toHaveClass("is-highlighted");
  });

  it("refuses dropped files it cannot index, in the browser, and says why", async () => {
    backend();
    renderApp("/documents");
    await screen.findByRole("table");
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [new File(["MZ"], "setup.exe")] } });
    const list = screen.getByRole("list", { name: "올리기 진행 상황" });
    expect(within(list).getByText("거부됨")).toBeInTheDocument();
    expect(within(list).getByText("지원하지 않는 형식입니다 (.exe)")).toBeInTheDocument();
  });

  it("compares ranked chunks and scores across the three search modes", async () => {
    const calls = backend();
    const { user } = renderApp("/documents");
    await user.type(screen.getByRole("searchbox", { name: "검색어" }), "연차");
    await user.click(screen.getByRole("radio", { name: "세 방식 비교" }));
    await user.click(screen.getByRole("button", { name: "검색" }));

    for (const [mode, label] of [
      ["hybrid", "하이브리드"],
      ["dense", "의미 (dense)"],
      ["sparse", "키워드 (sparse)"],
    ]) {
      const column = await screen.findByRole("region", { name: label });
      await within(column).findByText(`${mode} 첫 구절`);
      expect(within(column).getAllByRole("listitem")).toHaveLength(2);
      expect(within(column).getByText("1위")).toBeInTheDocument();
      expect(within(column).getByText("0.900")).toBeInTheDocument();
    }
    const bodies = await Promise.all(calls.filter((c) => c.url.endsWith("/api/search")).map((c) => c.json()));
    expect(bodies).toEqual([
      { query: "연차", mode: "hybrid", top_k: 5 },
      { query: "연차", mode: "dense", top_k: 5 },
      { query: "연차", mode: "sparse", top_k: 5 },
    ]);
  });
});
