import { render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { I18nProvider, translator } from "../../i18n";
import type { ErrorInfo, UploadOutcome, UploadResult } from "../../lib/types";
import type { UploadItem } from "../../lib/uploadState";
import { UploadList } from "./UploadList";

const item = (name: string, change: Partial<UploadItem>): UploadItem => ({
  id: name,
  name,
  size: 1500,
  file: new File(["x".repeat(1500)], name),
  phase: "queued",
  progress: 0,
  job: null,
  results: [],
  error: null,
  ...change,
});

const result = (outcome: UploadOutcome, chunks = 0, error: string | ErrorInfo | null = null): UploadResult => ({
  filename: "f",
  document_id: "d",
  outcome,
  chunks,
  error: typeof error === "string" ? { code: "indexing_failed", message: error } : error,
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
    expect(rows[4]).toHaveTextContent("이 문서를 색인하지 못했습니다.");
    expect(rows[4]).not.toHaveTextContent("The HWP file is encrypted.");
    expect(rows[5]).toHaveTextContent("취소됨");
    expect(within(rows[5]!).getByRole("button", { name: "‘f.docx’ 목록에서 지우기" })).toBeInTheDocument();
  });

  it("shows where each file's job is, in either language", () => {
    const job = (change: Partial<NonNullable<UploadItem["job"]>>) => ({
      id: "j",
      status: "running" as const,
      done: 0,
      total: 0,
      cancelling: false,
      ...change,
    });
    const items = [
      item("big.jsonl", { phase: "processing", progress: 1, job: job({ done: 12345, total: 20000 }) }),
      item("next.md", { phase: "processing", progress: 1, file: null, job: job({ status: "queued" }) }),
      item("stop.csv", { phase: "processing", progress: 1, job: job({ done: 1, total: 4, cancelling: true }) }),
      item("new.txt", { phase: "processing", progress: 1, job: job({ status: null }) }),
    ];
    const view = (lang: "ko" | "en") => (
      <I18nProvider lang={lang}>
        <UploadList items={items} onCancel={vi.fn()} onDismiss={vi.fn()} />
      </I18nProvider>
    );
    const korean = render(view("ko"));
    const [big, next, stop, fresh] = screen.getAllByRole("listitem");
    expect(within(big!).getByRole("progressbar", { name: "‘big.jsonl’ 색인 진행률" })).toHaveAttribute(
      "aria-valuenow",
      "62",
    );
    expect(big).toHaveTextContent("색인 중 · 문서 12,345/20,000");
    expect(next).toHaveTextContent("색인 차례를 기다리는 중");
    expect(within(next!).queryByRole("progressbar")).not.toBeInTheDocument();
    expect(next).toHaveTextContent("1.5 KB");
    expect(stop).toHaveTextContent("취소하는 중…");
    expect(within(stop!).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "25");
    expect(fresh).toHaveTextContent("색인 중…");
    for (const row of [big, next, stop, fresh]) expect(within(row!).getByRole("button")).toHaveAccessibleName(/취소/);

    korean.unmount();
    render(view("en"));
    const [bigEn, nextEn, stopEn] = screen.getAllByRole("listitem");
    expect(within(bigEn!).getByRole("progressbar", { name: "Indexing progress of “big.jsonl”" })).toBeInTheDocument();
    expect(bigEn).toHaveTextContent("Indexing · 12,345/20,000 documents");
    expect(nextEn).toHaveTextContent("Waiting to be indexed");
    expect(stopEn).toHaveTextContent("Cancelling…");
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

  it("words each reason in the UI's language: the server's from its code, the browser's from the file", () => {
    const scanned = { code: "ocr_unavailable", message: "scan.pdf holds…", params: { filename: "scan.pdf" } };
    const unknown = { code: "brand_new_code", message: "Something new went wrong." };
    const items = [
      item("scan.pdf", { phase: "done", progress: 1, results: [result("rejected", 0, scanned)] }),
      item("new.txt", { phase: "done", progress: 1, results: [result("rejected", 0, unknown)] }),
      item("setup.exe", { phase: "done", results: [result("rejected", 0, { code: "unsupported_type", message: "" })] }),
    ];
    // As UploadPanel's check does: worded with the translator of the moment.
    const precheck = (lang: "ko" | "en") => (file: File) =>
      file.name.endsWith(".exe")
        ? { code: "unsupported_type", message: translator(lang)("upload.reasonType", { ext: ".exe" }) }
        : null;
    const view = (lang: "ko" | "en") => (
      <I18nProvider lang={lang}>
        <UploadList items={items} onCancel={vi.fn()} onDismiss={vi.fn()} precheck={precheck(lang)} />
      </I18nProvider>
    );
    const korean = render(view("ko"));
    const [scan, fresh, exe] = screen.getAllByRole("listitem");
    expect(scan).toHaveTextContent("scan.pdf에는 글자가 이미지로만 들어 있는데");
    expect(fresh).toHaveTextContent("알 수 없는 오류입니다 (코드: brand_new_code).");
    expect(fresh).not.toHaveTextContent("Something new went wrong.");
    expect(exe).toHaveTextContent("지원하지 않는 형식입니다 (.exe)");

    korean.unmount();
    render(view("en"));
    const [scanEn, freshEn, exeEn] = screen.getAllByRole("listitem");
    expect(scanEn).toHaveTextContent("scan.pdf holds its text as images only");
    expect(freshEn).toHaveTextContent("Something new went wrong.");
    expect(exeEn).toHaveTextContent("Unsupported format (.exe)");
  });
});
