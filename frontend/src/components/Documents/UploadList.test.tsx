import { render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { I18nProvider } from "../../i18n";
import type { UploadOutcome, UploadResult } from "../../lib/types";
import type { UploadItem } from "../../lib/uploadState";
import { UploadList } from "./UploadList";

const item = (name: string, change: Partial<UploadItem>): UploadItem => ({
  id: name,
  file: new File(["x".repeat(1500)], name),
  phase: "queued",
  progress: 0,
  results: [],
  error: null,
  ...change,
});

const result = (outcome: UploadOutcome, chunks = 0, error: string | null = null): UploadResult => ({
  filename: "f",
  document_id: "d",
  outcome,
  chunks,
  error: error ? { code: "extraction_failed", message: error } : null,
});

describe("UploadList", () => {
  it("shows each file's progress, then its result and why", () => {
    render(
      <I18nProvider lang="ko">
        <UploadList
          items={[
            item("a.pdf", { phase: "uploading", progress: 0.42 }),
            item("b.md", { phase: "processing", progress: 1 }),
            item("c.txt", { phase: "done", progress: 1, results: [result("indexed", 7)] }),
            item("d.txt", { phase: "done", progress: 1, results: [result("unchanged")] }),
            item("e.hwp", { phase: "done", progress: 1, results: [result("failed", 0, "The HWP file is encrypted.")] }),
            item("f.docx", { phase: "error", error: { code: "cancelled", message: "" } }),
          ]}
          onCancel={vi.fn()}
          onDismiss={vi.fn()}
        />
      </I18nProvider>,
    );
    const rows = screen.getAllByRole("listitem");
    expect(within(rows[0]!).getByRole("progressbar", { name: "a.pdf" })).toHaveAttribute("aria-valuenow", "42");
    expect(rows[0]).toHaveTextContent("올리는 중 42%");
    expect(within(rows[0]!).getByRole("button", { name: "‘a.pdf’ 올리기 취소" })).toBeInTheDocument();
    expect(rows[1]).toHaveTextContent("색인 중…");
    expect(rows[2]).toHaveTextContent("색인됨 · 청크 7개");
    expect(rows[3]).toHaveTextContent("변경 없음");
    expect(rows[4]).toHaveTextContent("실패");
    expect(rows[4]).toHaveTextContent("The HWP file is encrypted.");
    expect(rows[5]).toHaveTextContent("취소됨");
    expect(within(rows[5]!).getByRole("button", { name: "‘f.docx’ 목록에서 지우기" })).toBeInTheDocument();
  });

  it("sums up a file of many documents: what was indexed, kept, removed and why one failed", () => {
    const many = [
      result("indexed", 2),
      result("indexed", 1),
      result("unchanged"),
      result("failed", 0, "line 4 has no text"),
      result("removed"),
    ];
    render(
      <I18nProvider lang="en">
        <UploadList
          items={[
            item("faq.jsonl", { phase: "done", progress: 1, results: many }),
            item("same.jsonl", { phase: "done", progress: 1, results: [result("unchanged"), result("unchanged")] }),
          ]}
          onCancel={vi.fn()}
          onDismiss={vi.fn()}
        />
      </I18nProvider>,
    );
    const [changed, same] = screen.getAllByRole("listitem");
    expect(changed).toHaveTextContent("4 documents · 2 indexed · 1 unchanged · 1 removed · 1 failed");
    expect(changed).toHaveTextContent("line 4 has no text");
    expect(same).toHaveTextContent("2 documents · 2 unchanged");
  });
});
