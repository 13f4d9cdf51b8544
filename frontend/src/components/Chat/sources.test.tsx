import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { RouterProvider } from "../../hooks/router";
import { I18nProvider, translator, type Lang } from "../../i18n";
import type { Source } from "../../lib/types";
import { installFetch, json } from "../../test/fakeFetch";
import { MessageView } from "./MessageView";
import { SourceDialog } from "./SourceDialog";
import { sourcePlace } from "./sourcePlace";

const SOURCE: Source = {
  number: 1,
  document_id: "doc-1",
  chunk_id: "chunk-1",
  title: "휴가 규정",
  source: "규정/휴가규정.pdf",
  text: "연차 휴가는 1년에 15일입니다.",
  score: 0.8,
  metadata: { page: 3 },
  filename: "휴가규정.pdf",
  page: 3,
  page_end: null,
  page_label: null,
  page_unit: "page",
};

function place(change: Partial<Source>, lang: Lang = "ko"): string {
  return sourcePlace({ ...SOURCE, ...change }, translator(lang));
}

describe("where a citation points", () => {
  it("names the file and the page, slide or sheet in either language", () => {
    expect(place({})).toBe("휴가규정.pdf · 3쪽");
    expect(place({}, "en")).toBe("휴가규정.pdf · p. 3");
    expect(place({ page_end: 4 })).toBe("휴가규정.pdf · 3–4쪽");
    expect(place({ page_end: 4 }, "en")).toBe("휴가규정.pdf · pp. 3–4");
    expect(place({ filename: "발표.pptx", page: 2, page_unit: "slide" })).toBe("발표.pptx · 슬라이드 2");
    expect(place({ filename: "예산.xlsx", page: 2, page_unit: "sheet", page_label: "인건비" })).toBe(
      "예산.xlsx · 시트 2 ‘인건비’",
    );
    expect(place({ filename: "예산.xlsx", page: 2, page_unit: "sheet" }, "en")).toBe("예산.xlsx · sheet 2");
  });

  it("names the file alone where the format has no pages", () => {
    expect(place({ filename: "메모.txt", page: null, page_unit: null })).toBe("메모.txt");
  });

  it("reads the file name from the path of answers saved before the API sent it", () => {
    const saved: Source = { ...SOURCE, filename: undefined, page: undefined, page_unit: undefined };
    expect(sourcePlace(saved, translator("ko"))).toBe("휴가규정.pdf");
  });
});

describe("citations in the chat", () => {
  it("show the title and page under the answer, and the file in the tooltip", () => {
    render(
      <I18nProvider lang="ko">
        <MessageView
          message={{ id: "m", role: "assistant", content: "15일입니다 [1].", status: "done", sources: [SOURCE] }}
          onCite={vi.fn()}
        />
      </I18nProvider>,
    );
    const chip = screen.getByRole("button", { name: "1휴가 규정 · 3쪽" });
    expect(chip).toHaveAttribute("title", "휴가규정.pdf · 3쪽");
    expect(screen.getByRole("button", { name: "출처 1 보기" })).toHaveAttribute("title", "휴가규정.pdf · 3쪽");
  });

  it("the source dialog names the file, the page and the path", async () => {
    installFetch({
      "GET /api/documents/doc-1": () =>
        json({
          id: "doc-1",
          collection: "default",
          source: "규정/휴가규정.pdf",
          title: "휴가 규정",
          status: "ready",
          error: null,
          chunk_count: 4,
          size_bytes: 2048,
          metadata: {},
          created_at: "2025-01-02T03:04:05Z",
          updated_at: "2025-01-02T03:04:05Z",
        }),
    });
    render(
      <QueryClientProvider client={new QueryClient()}>
        <RouterProvider>
          <I18nProvider lang="ko">
            <SourceDialog source={SOURCE} onClose={vi.fn()} />
          </I18nProvider>
        </RouterProvider>
      </QueryClientProvider>,
    );
    const dialog = screen.getByRole("dialog", { name: "출처 [1]" });
    expect(within(dialog).getByText("휴가규정.pdf · 3쪽")).toBeInTheDocument();
    expect(within(dialog).getByText("규정/휴가규정.pdf")).toBeInTheDocument();
    expect(await within(dialog).findByText(/청크 4개/)).toBeInTheDocument();
  });
});
