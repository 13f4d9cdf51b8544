import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { AdapterInfo, ModelsResponse, ReviewProvider } from "../lib/types";
import { frame, installFetch, json, sse } from "../test/fakeFetch";
import { renderApp } from "../test/render";

const BASE = "K-intelligence/Midm-2.0-Mini-Instruct";

const REVIEWS_ADAPTER: AdapterInfo = {
  name: "reviews",
  path: "/srv/adapters/reviews",
  origin: "api",
  run: {
    base_model: BASE,
    method: "qlora",
    data: "/data/naver/ratings_train.jsonl",
    examples: 12000,
    steps: 1200,
    total_steps: 1200,
    final_loss: 1.23456,
    finished_at: "2026-03-02T06:30:00+00:00",
    eval: {
      data: "/data/naver/ratings_test.jsonl",
      rating_consistency: 0.82,
      perplexity: 14.25,
      distinct_2: null,
      base_rating_consistency: 0.41,
      base_perplexity: 18.5,
    },
  },
};

const SHORT_ADAPTER: AdapterInfo = { name: "short", path: "/srv/adapters/short", origin: "settings", run: null };

function models(adapters: AdapterInfo[], provider: ReviewProvider = "local"): ModelsResponse {
  const off = provider === "none";
  return {
    chat: {
      provider: "extractive",
      name: "extractive",
      base_model: null,
      device: null,
      dtype: null,
      quantization: null,
    },
    reviews: {
      provider,
      name: off ? null : `local:${BASE}`,
      base_model: off ? null : BASE,
      device: off ? null : "cuda",
      dtype: off ? null : "bfloat16",
      quantization: null,
      writes_reviews: !off,
      loads_adapters: provider === "local",
      shares_chat_model: false,
      adapters,
    },
  };
}

function doneFrames(adapter: string | null): string[] {
  return [
    frame("token", { index: 0, text: "맛있어요" }),
    frame("done", { reviews: [{ text: "맛있어요", rating: 8 }], model: BASE, adapter }),
  ];
}

describe("review writer", () => {
  it("shows how to configure a model while the backend has none", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json({ error: { code: "model_unavailable", message: "No local model." } }, 503),
    });
    renderApp("/reviews");
    const guide = await screen.findByRole("status", { name: "리뷰를 쓸 모델이 설정되지 않았습니다" });
    expect(guide).toHaveTextContent("REVIEW_PROVIDER=local");
    expect(guide).toHaveTextContent("REVIEW_ADAPTERS=reviews=/path/to/adapter");
    expect(guide).toHaveTextContent("모델을 쓸 수 없습니다");
    expect(guide).not.toHaveTextContent("No local model.");
  });

  it("says that reviews are off when the server runs with REVIEW_PROVIDER=none", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models([], "none")),
    });
    renderApp("/reviews");
    const guide = await screen.findByRole("status", { name: "리뷰를 쓸 모델이 설정되지 않았습니다" });
    expect(guide).toHaveTextContent("REVIEW_PROVIDER=none으로 실행 중이라 리뷰 작성이 꺼져 있습니다");
    expect(screen.queryByRole("button", { name: "리뷰 쓰기" })).not.toBeInTheDocument();
    expect(screen.queryByRole("region", { name: "어댑터 관리" })).not.toBeInTheDocument();
  });

  it("streams reviews for the chosen rating and names the model and adapter", async () => {
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models([REVIEWS_ADAPTER])),
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
            model: BASE,
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
    await waitFor(() => expect(results).toHaveTextContent(BASE));
    expect(results).toHaveTextContent("배우들 연기가 좋았어요");
    expect(within(results).getAllByRole("listitem")).toHaveLength(2);
    expect(results).toHaveTextContent("reviews");

    const body = await calls.find((c) => c.url.endsWith("/generate/stream"))!.json();
    expect(body).toEqual({ rating: 4, scale: 5, n: 2, temperature: 0.8, adapter: "reviews", subject: "영화 ‘기생충’" });
  });

  it("lists the base and each adapter with its training record, and sends the chosen one", async () => {
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models([REVIEWS_ADAPTER, SHORT_ADAPTER])),
      "POST /api/reviews/generate/stream": async (request) => {
        const { adapter } = (await request.clone().json()) as { adapter: string | null };
        return sse(request, doneFrames(adapter));
      },
    });
    const { user } = renderApp("/reviews");
    const chooser = await screen.findByRole("group", { name: "어댑터" });
    const first = within(chooser).getByRole("radio", { name: "reviews" });
    expect(first).toBeChecked();
    expect(first).toHaveAccessibleDescription(/방법\s*qlora/);
    expect(first).toHaveAccessibleDescription(/학습 단계\s*1,200/);
    expect(first).toHaveAccessibleDescription(/최종 손실\s*1\.235/);
    expect(first).toHaveAccessibleDescription(/학습 완료\s*2026/);
    expect(first).toHaveAccessibleDescription(/학습 데이터\s*ratings_train\.jsonl \(리뷰 12,000개\)/);
    expect(first).toHaveAccessibleDescription(
      /평가 데이터 ratings_test\.jsonl · 별점 일치도 0\.82 \(기본 모델 0\.41\) · 퍼플렉서티 14\.25 \(기본 모델 18\.5\)$/,
    );
    expect(within(chooser).getByRole("radio", { name: "short" })).toHaveAccessibleDescription(
      /학습 기록\(run\.json\)이 없습니다/,
    );
    const base = within(chooser).getByRole("radio", { name: "기본 모델만" });
    expect(base).toHaveAccessibleDescription(BASE);

    // An adapter of REVIEW_ADAPTERS is changed in the settings, not unloaded here.
    const admin = screen.getByRole("region", { name: "어댑터 관리" });
    expect(within(admin).getByRole("button", { name: "‘reviews’ 어댑터 내리기" })).toBeInTheDocument();
    expect(within(admin).queryByRole("button", { name: "‘short’ 어댑터 내리기" })).not.toBeInTheDocument();
    expect(within(admin).getByText("REVIEW_ADAPTERS 설정")).toBeInTheDocument();

    // The keyboard moves the choice like any radio group.
    first.focus();
    await user.keyboard("{ArrowDown}");
    expect(within(chooser).getByRole("radio", { name: "short" })).toBeChecked();
    await user.click(screen.getByRole("button", { name: "리뷰 쓰기" }));
    const results = screen.getByRole("region", { name: "결과" });
    await waitFor(() => expect(results.querySelector(".produced-by")).toHaveTextContent("short"));

    await user.click(base);
    await user.click(screen.getByRole("button", { name: "리뷰 쓰기" }));
    await waitFor(() => expect(results.querySelector(".produced-by")).toHaveTextContent("기본 모델만"));

    const sent = await Promise.all(calls.filter((c) => c.url.endsWith("/generate/stream")).map((c) => c.json()));
    expect(sent.map((body: { adapter: unknown }) => body.adapter)).toEqual(["short", null]);
  });

  it("loads an adapter by name and path, lists it and writes with it, then unloads it", async () => {
    let loaded: AdapterInfo[] = [REVIEWS_ADAPTER];
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models(loaded)),
      "POST /api/models/adapters": async (request) => {
        const { name, path } = (await request.clone().json()) as { name: string; path: string };
        const adapter: AdapterInfo = {
          name,
          path,
          origin: "api",
          run: { ...REVIEWS_ADAPTER.run!, steps: 40, total_steps: 80, finished_at: null, eval: null },
        };
        loaded = [...loaded, adapter];
        return json(adapter, 201);
      },
      "DELETE /api/models/adapters/reviews": () => {
        loaded = loaded.filter((a) => a.name !== "reviews");
        return new Response(null, { status: 204 });
      },
      "POST /api/reviews/generate/stream": async (request) => {
        const { adapter } = (await request.clone().json()) as { adapter: string | null };
        return sse(request, doneFrames(adapter));
      },
    });
    const { user } = renderApp("/reviews");
    const admin = await screen.findByRole("region", { name: "어댑터 관리" });
    await user.type(within(admin).getByRole("textbox", { name: "이름" }), "reviews-v2");
    await user.type(within(admin).getByRole("textbox", { name: "서버의 폴더 경로" }), "/srv/adapters/reviews-v2");
    await user.click(within(admin).getByRole("button", { name: "불러오기" }));

    expect(await within(admin).findByText("‘reviews-v2’ 어댑터를 불러왔습니다.")).toBeInTheDocument();
    const chooser = screen.getByRole("group", { name: "어댑터" });
    // The list is asked again, and the new adapter is the one chosen.
    const added = await within(chooser).findByRole("radio", { name: "reviews-v2" });
    expect(added).toBeChecked();
    expect(added).toHaveAccessibleDescription(/학습 단계\s*40 \/ 80/);
    expect(added).toHaveAccessibleDescription(/학습 완료\s*끝나지 않은 학습/);
    expect(added).toHaveAccessibleDescription(/평가 기록 없음/);
    const loadCall = calls.find((c) => c.method === "POST" && c.url.endsWith("/api/models/adapters"))!;
    expect(await loadCall.json()).toEqual({ name: "reviews-v2", path: "/srv/adapters/reviews-v2" });

    await user.click(screen.getByRole("button", { name: "리뷰 쓰기" }));
    const results = screen.getByRole("region", { name: "결과" });
    await waitFor(() => expect(results.querySelector(".produced-by")).toHaveTextContent("reviews-v2"));

    await user.click(within(admin).getByRole("button", { name: "‘reviews’ 어댑터 내리기" }));
    expect(await within(admin).findByText("‘reviews’ 어댑터를 내렸습니다.")).toBeInTheDocument();
    await waitFor(() => expect(within(chooser).queryByRole("radio", { name: "reviews" })).not.toBeInTheDocument());
    expect(within(chooser).getByRole("radio", { name: "reviews-v2" })).toBeChecked();
    const loadedList = within(admin).getByRole("list", { name: "불러온 어댑터" });
    expect(within(loadedList).getAllByRole("listitem")).toHaveLength(1);
    expect(calls.filter((c) => c.method === "DELETE").map((c) => new URL(c.url).pathname)).toEqual([
      "/api/models/adapters/reviews",
    ]);
  });

  it("asks for the adapters again when the chosen one was unloaded elsewhere", async () => {
    let loaded: AdapterInfo[] = [REVIEWS_ADAPTER];
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models(loaded)),
      "POST /api/reviews/generate/stream": () => {
        loaded = [];
        return json({ error: { code: "unknown_adapter", message: "Unknown adapter 'reviews'." } }, 422);
      },
    });
    const { user } = renderApp("/reviews");
    const chooser = await screen.findByRole("group", { name: "어댑터" });
    expect(within(chooser).getByRole("radio", { name: "reviews" })).toBeChecked();
    await user.click(screen.getByRole("button", { name: "리뷰 쓰기" }));

    const alert = await within(screen.getByRole("region", { name: "결과" })).findByRole("alert");
    expect(alert).toHaveTextContent("지금 불러와 있지 않은 어댑터입니다. 목록에서 다시 고르세요.");
    await waitFor(() => expect(within(chooser).queryByRole("radio", { name: "reviews" })).not.toBeInTheDocument());
    expect(within(chooser).getByRole("radio", { name: "기본 모델만" })).toBeChecked();
    expect(screen.queryByRole("status", { name: "리뷰를 쓸 모델이 설정되지 않았습니다" })).not.toBeInTheDocument();
  });

  it("says in Korean that an adapter of another base model cannot be loaded, and changes nothing", async () => {
    const calls = installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models([REVIEWS_ADAPTER])),
      "POST /api/models/adapters": () =>
        json(
          {
            error: {
              code: "adapter_base_mismatch",
              message:
                "LoRA adapter 'qwen' at /srv/adapters/qwen was trained on Qwen/Qwen2.5-0.5B, not on the " +
                `review model's base ${BASE}; serve it with the base it was trained on.`,
              params: { name: "qwen", adapter_base: "Qwen/Qwen2.5-0.5B", model_base: BASE },
            },
          },
          422,
        ),
    });
    const { user } = renderApp("/reviews");
    const admin = await screen.findByRole("region", { name: "어댑터 관리" });
    await user.type(within(admin).getByRole("textbox", { name: "이름" }), "qwen");
    await user.type(within(admin).getByRole("textbox", { name: "서버의 폴더 경로" }), "/srv/adapters/qwen");
    await user.click(within(admin).getByRole("button", { name: "불러오기" }));

    const alert = await within(admin).findByRole("alert");
    expect(alert).toHaveTextContent("요청을 처리할 수 없습니다");
    expect(alert).toHaveTextContent(
      `‘qwen’ 어댑터는 Qwen/Qwen2.5-0.5B로 학습되어, 리뷰 모델의 기본 모델 ${BASE}에 쓸 수 없습니다.`,
    );
    expect(alert).not.toHaveTextContent("serve it with the base");
    // The name and path stay for a correction, and the list is not asked again.
    expect(within(admin).getByRole("textbox", { name: "이름" })).toHaveValue("qwen");
    expect(calls.filter((c) => c.url.endsWith("/api/models"))).toHaveLength(1);
    expect(within(screen.getByRole("group", { name: "어댑터" })).getAllByRole("radio")).toHaveLength(2);
  });

  it("starts with the adapter a link names (as the fine-tuning page links after publishing)", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/models": () => json(models([REVIEWS_ADAPTER, SHORT_ADAPTER])),
    });
    renderApp("/reviews?adapter=short");
    const chooser = await screen.findByRole("group", { name: "어댑터" });
    expect(within(chooser).getByRole("radio", { name: "short" })).toBeChecked();
    expect(within(chooser).getByRole("radio", { name: "reviews" })).not.toBeChecked();
  });
});
