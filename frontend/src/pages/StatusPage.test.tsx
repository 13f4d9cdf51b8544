import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { ModelsResponse } from "../lib/types";
import { installFetch, json, STATUS } from "../test/fakeFetch";
import { renderApp } from "../test/render";

const READY = { status: "ready", checks: { database: { ok: true, detail: "embedded PostgreSQL 16" } } };

const MODELS: ModelsResponse = {
  chat: { provider: "openai", name: "gpt-4o-mini", base_model: null, device: null, dtype: null, quantization: null },
  reviews: {
    provider: "local",
    name: "local:K-intelligence/Midm-2.0-Mini-Instruct",
    base_model: "K-intelligence/Midm-2.0-Mini-Instruct",
    device: "cuda",
    dtype: "bfloat16",
    quantization: "4bit",
    writes_reviews: true,
    loads_adapters: true,
    shares_chat_model: false,
    adapters: [
      { name: "reviews", path: "/srv/adapters/reviews", origin: "settings", run: null },
      { name: "short", path: "/srv/adapters/short", origin: "api", run: null },
    ],
  },
};

/** The value next to a label in a card's list of facts. */
function valueOf(card: HTMLElement, label: string): string | null | undefined {
  const term = within(card).getByText(label, { selector: "dt" });
  return term.nextElementSibling?.textContent;
}

describe("status screen", () => {
  it("shows the active models, database and failing checks", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () =>
        json({ ...STATUS, reviews: { provider: "fake", name: "fake", adapters: [], shares_chat_model: false } }),
      "GET /ready": () =>
        json(
          {
            status: "unavailable",
            checks: {
              database: { ok: true, detail: "embedded PostgreSQL 16" },
              llm: { ok: false, detail: "OPENAI_API_KEY is not set" },
            },
          },
          503,
        ),
      "GET /api/models": () => json({ error: { code: "not_found", message: "No route." } }, 404),
    });
    renderApp("/status");
    expect(await screen.findByText("hash-ko")).toBeInTheDocument();
    expect(screen.getByText("내장 PostgreSQL")).toBeInTheDocument();
    expect(screen.getByText("하이브리드 · 상위 5개")).toBeInTheDocument();
    const checks = await screen.findByRole("list", { name: "점검 항목" });
    expect(within(checks).getByText("OPENAI_API_KEY is not set")).toBeInTheDocument();
    expect(within(checks).getAllByText("문제 있음")).toHaveLength(1);
    // Without the model list, both roles still come from /api/status.
    const chat = screen.getByRole("region", { name: "채팅 모델" });
    expect(valueOf(chat, "제공자")).toBe("extractive");
    const reviews = screen.getByRole("region", { name: "리뷰 모델" });
    expect(valueOf(reviews, "제공자")).toBe("fake");
    expect(valueOf(reviews, "어댑터")).toBe("활성 어댑터 없음");
    expect(within(reviews).queryByText("장치")).not.toBeInTheDocument();
  });

  it("shows the chat role and the review role side by side", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
      "GET /ready": () => json(READY),
      "GET /api/models": () => json(MODELS),
    });
    renderApp("/status");
    await screen.findByText("reviews, short");
    const reviews = screen.getByRole("region", { name: "리뷰 모델" });
    const chat = screen.getByRole("region", { name: "채팅 모델" });
    expect(chat.parentElement).toBe(reviews.parentElement);

    expect(valueOf(chat, "제공자")).toBe("openai");
    expect(valueOf(chat, "모델")).toBe("gpt-4o-mini");
    // A remote model has no device, precision or quantisation to show.
    expect(within(chat).queryByText("장치")).not.toBeInTheDocument();
    expect(within(chat).queryByText("어댑터")).not.toBeInTheDocument();

    expect(valueOf(reviews, "제공자")).toBe("local");
    expect(valueOf(reviews, "모델")).toBe("local:K-intelligence/Midm-2.0-Mini-Instruct");
    expect(valueOf(reviews, "장치")).toBe("cuda");
    expect(valueOf(reviews, "정밀도")).toBe("bfloat16");
    expect(valueOf(reviews, "양자화")).toBe("4bit");
    expect(valueOf(reviews, "어댑터")).toBe("reviews, short");
    expect(reviews).not.toHaveTextContent("한 번만 불러와");
  });

  it("says when chat and reviews share one loaded base", async () => {
    const base = { provider: "local", name: "local:midm", base_model: "midm", device: "cpu", dtype: "float32" };
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
      "GET /ready": () => json(READY),
      "GET /api/models": () =>
        json({
          chat: { ...base, quantization: null },
          reviews: { ...MODELS.reviews, ...base, quantization: null, shares_chat_model: true },
        }),
    });
    renderApp("/status");
    await screen.findByText("채팅 모델과 같은 기본 모델이라, 한 번만 불러와 함께 씁니다.");
    const chat = screen.getByRole("region", { name: "채팅 모델" });
    expect(valueOf(chat, "장치")).toBe("cpu");
    expect(valueOf(chat, "양자화")).toBe("없음");
    expect(within(screen.getByRole("region", { name: "리뷰 모델" })).getByText(/한 번만 불러와/)).toBeInTheDocument();
  });

  it("says plainly when review writing is off", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
      "GET /ready": () => json(READY),
      "GET /api/models": () =>
        json({
          chat: MODELS.chat,
          reviews: {
            ...MODELS.reviews,
            provider: "none",
            name: null,
            base_model: null,
            device: null,
            dtype: null,
            quantization: null,
            writes_reviews: false,
            loads_adapters: false,
            adapters: [],
          },
        }),
    });
    const { user } = renderApp("/status");
    await screen.findByText("리뷰 작성이 꺼져 있습니다");
    const reviews = screen.getByRole("region", { name: "리뷰 모델" });
    expect(reviews).toHaveTextContent("꺼짐");
    expect(reviews).toHaveTextContent("리뷰 작성이 꺼져 있습니다");
    expect(reviews).toHaveTextContent("REVIEW_PROVIDER=none");
    expect(valueOf(screen.getByRole("region", { name: "채팅 모델" }), "제공자")).toBe("openai");

    await user.click(screen.getByRole("button", { name: "Switch to English" }));
    const english = await screen.findByRole("region", { name: "Review model" });
    expect(english).toHaveTextContent("Review writing is off");
    expect(screen.getByRole("region", { name: "Chat model" })).toBeInTheDocument();
  });
});
