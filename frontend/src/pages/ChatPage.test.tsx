import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { frame, installFetch, json, sse, STATUS, type Handler } from "../test/fakeFetch";
import { renderApp } from "../test/render";

const SOURCE = {
  number: 1,
  document_id: "doc-1",
  chunk_id: "chunk-1",
  title: "취업규칙",
  source: "rules.md",
  text: "연차 유급휴가는 1년간 80퍼센트 이상 출근한 근로자에게 15일을 준다.",
  score: 0.87,
  metadata: {},
};

const DOCUMENT = {
  id: "doc-1",
  collection: "default",
  source: "rules.md",
  title: "취업규칙",
  status: "ready",
  error: null,
  chunk_count: 12,
  size_bytes: 20480,
  metadata: {},
  created_at: "2025-01-02T03:04:05Z",
  updated_at: "2025-01-02T03:04:05Z",
};

function backend(chat: Handler) {
  return installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/status": () => json(STATUS),
    "GET /api/documents/doc-1": () => json(DOCUMENT),
    "POST /api/chat/stream": chat,
  });
}

async function ask(user: ReturnType<typeof renderApp>["user"], question: string) {
  await user.type(screen.getByRole("textbox", { name: "질문" }), `${question}{Enter}`);
}

/** Wait until the latest answer reads `text` (the live region repeats it for screen readers). */
async function answered(text: string) {
  await waitFor(() => expect(screen.getAllByRole("article", { name: "답변" }).at(-1)).toHaveTextContent(text));
}

describe("chat screen", () => {
  it("streams an answer whose citation opens the passage and its document", async () => {
    const calls = backend((request) =>
      sse(request, [
        frame("sources", { sources: [SOURCE] }),
        frame("token", { text: "연차는 15일입니다" }),
        frame("token", { text: "[1]." }),
        frame("done", { answer: "연차는 15일입니다[1]." }),
      ]),
    );
    const { user } = renderApp("/");
    await ask(user, "연차는 며칠인가요?");

    const answer = await screen.findByRole("article", { name: "답변" });
    const cite = await within(answer).findByRole("button", { name: "출처 1 보기" });
    expect(answer).toHaveTextContent("연차는 15일입니다1.");
    expect(screen.getByRole("heading", { level: 1, name: "연차는 며칠인가요?" })).toBeInTheDocument();

    const body = (await calls.find((c) => c.url.endsWith("/api/chat/stream"))!.json()) as Record<string, unknown>;
    expect(body).toEqual({ question: "연차는 며칠인가요?", history: [] });

    await user.click(cite);
    const dialog = await screen.findByRole("dialog", { name: "출처 [1]" });
    expect(dialog).toHaveTextContent(SOURCE.text);
    expect(await within(dialog).findByText(/청크 12개/)).toBeInTheDocument();
    expect(within(dialog).getByRole("link", { name: "문서 목록에서 보기" })).toHaveAttribute(
      "href",
      "/documents?doc=doc-1",
    );
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("sends earlier turns and the chosen search settings with a follow-up question", async () => {
    const calls = backend((request) =>
      sse(request, [frame("sources", { sources: [] }), frame("done", { answer: "첫 답" })]),
    );
    const { user } = renderApp("/");
    await ask(user, "첫 질문");
    await answered("첫 답");

    await user.click(screen.getByRole("button", { name: "검색 설정" }));
    await user.click(screen.getByRole("radio", { name: "키워드 (sparse)" }));
    await user.type(screen.getByRole("spinbutton", { name: "참고할 구절 수 (top-k)" }), "3");
    await user.keyboard("{Escape}");
    await ask(user, "다음 질문");
    await waitFor(() => expect(calls.filter((c) => c.url.endsWith("/chat/stream"))).toHaveLength(2));

    const second = calls.filter((c) => c.url.endsWith("/chat/stream"))[1]!;
    expect(await second.json()).toEqual({
      question: "다음 질문",
      history: [
        { role: "user", content: "첫 질문" },
        { role: "assistant", content: "첫 답" },
      ],
      mode: "sparse",
      top_k: 3,
    });
  });

  it("stops a streaming answer and keeps what arrived", async () => {
    backend((request) =>
      sse(request, [frame("sources", { sources: [] }), frame("token", { text: "부분 답변" })], { hold: true }),
    );
    const { user } = renderApp("/");
    await ask(user, "긴 질문");
    await answered("부분 답변");

    await user.click(screen.getByRole("button", { name: "멈추기" }));
    expect(await screen.findByText("중단됨")).toBeInTheDocument();
    await answered("부분 답변");
    expect(screen.getByRole("button", { name: "보내기" })).toBeInTheDocument();
  });

  it("explains a model failure reported in the stream", async () => {
    backend((request) =>
      sse(request, [
        frame("sources", { sources: [] }),
        frame("error", { error: { code: "model_unavailable", message: "OpenAI did not answer." } }),
      ]),
    );
    const { user } = renderApp("/");
    await ask(user, "질문");
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("모델이 응답하지 못했습니다");
    expect(alert).toHaveTextContent("모델을 쓸 수 없습니다. 모델 설정과 연결을 확인하세요.");
    expect(alert).not.toHaveTextContent("OpenAI did not answer.");
  });

  it("says when the server cannot be reached", async () => {
    backend(() => {
      throw new TypeError("Failed to fetch");
    });
    const { user } = renderApp("/");
    await ask(user, "질문");
    expect(await screen.findByRole("alert")).toHaveTextContent("서버에 연결할 수 없습니다");
  });

  it("keeps conversations in the browser: list, rename, new chat and delete", async () => {
    backend((request) => sse(request, [frame("sources", { sources: [] }), frame("done", { answer: "답" })]));
    const first = renderApp("/");
    await ask(first.user, "저장될 질문");
    await answered("답");
    first.unmount();

    const { user } = renderApp("/");
    const list = screen.getByRole("complementary", { name: "대화 목록" });
    expect(within(list).getByRole("button", { name: "저장될 질문" })).toHaveAttribute("aria-current", "true");

    await user.click(within(list).getByRole("button", { name: "이름 바꾸기: 저장될 질문" }));
    const renameBox = screen.getByRole("textbox", { name: "대화 이름" });
    await user.clear(renameBox);
    await user.type(renameBox, "휴가 문의{Enter}");
    expect(within(list).getByRole("button", { name: "휴가 문의" })).toBeInTheDocument();

    await user.click(within(list).getByRole("button", { name: "새 대화" }));
    expect(screen.getByRole("heading", { level: 2, name: "올린 문서에 대해 물어보세요" })).toBeInTheDocument();

    await user.click(within(list).getByRole("button", { name: "대화 삭제: 휴가 문의" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "삭제" }));
    expect(within(list).queryByRole("button", { name: "휴가 문의" })).not.toBeInTheDocument();
  });
});
