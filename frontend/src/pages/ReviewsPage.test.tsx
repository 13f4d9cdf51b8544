import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { frame, installFetch, json, sse } from "../test/fakeFetch";
import { renderApp } from "../test/render";

const MODELS = {
  llm: { provider: "local", name: "midm-mini" },
  base_model: "K-intelligence/Midm-2.0-Mini-Instruct",
  adapters: ["reviews"],
  device: "cuda",
  dtype: "bfloat16",
  quantization: null,
};

describe("review writer", () => {
  it("shows how to configure a model while the backend has none", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json({ error: { code: "model_unavailable", message: "No local model." } }, 503),
    });
    renderApp("/reviews");
    const guide = await screen.findByRole("status", { name: "리뷰를 쓸 모델이 설정되지 않았습니다" });
    expect(guide).toHaveTextContent("LLM_PROVIDER=local");
    expect(guide).toHaveTextContent("LORA_ADAPTERS=reviews=/path/to/adapter");
    expect(guide).toHaveTextContent("모델을 쓸 수 없습니다");
    expect(guide).not.toHaveTextContent("No local model.");
  });

  it("streams reviews for the chosen rating and names the model and adapter", async () => {
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(MODELS),
      "POST /api/reviews/generate/stream": (request) =>
        sse(request, [
          frame("token", { index: 0, text: "배우들 연기가 " }),
          frame("token", { index: 1, text: "지루했어요" }),
          frame("token", { index: 0, text: "좋았어요" }),
          frame("done", {
            reviews: [
              { text: "배우들 연기가 좋았어요", rating: 4 },
              { text: "지루했어요", rating: 4 },
            ],
            model: MODELS.base_model,
            adapter: "reviews",
          }),
        ]),
    });
    const { user } = renderApp("/reviews");
    await user.click(await screen.findByRole("radio", { name: "5점 만점" }));
    await user.click(screen.getByRole("radio", { name: "2점 / 5점" }));
    await user.keyboard("{ArrowRight}{ArrowRight}");
    expect(screen.getByRole("radio", { name: "4점 / 5점" })).toBeChecked();
    await user.type(screen.getByRole("textbox", { name: "주제 (선택)" }), "영화 ‘기생충’");
    await user.click(screen.getByRole("button", { name: "리뷰 쓰기" }));

    const results = screen.getByRole("region", { name: "결과" });
    // The model and adapter come with the last frame, after every piece of text.
    await waitFor(() => expect(results).toHaveTextContent(MODELS.base_model));
    expect(results).toHaveTextContent("배우들 연기가 좋았어요");
    expect(within(results).getAllByRole("listitem")).toHaveLength(2);
    expect(results).toHaveTextContent("reviews");

    const body = await calls.find((c) => c.url.endsWith("/generate/stream"))!.json();
    expect(body).toEqual({ rating: 4, scale: 5, n: 2, temperature: 0.8, adapter: "reviews", subject: "영화 ‘기생충’" });
  });
});
