import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { DatasetInfo, FinetuneJob } from "../lib/types";
import { frame, installFetch, json, sse, type Handler } from "../test/fakeFetch";
import { installXhr } from "../test/fakeXhr";
import { BASE, dataset, EVAL, finetuneJob, metric, plan } from "../test/finetuneFixtures";
import options from "../test/finetuneOptions.json";
import { renderApp } from "../test/render";

/** A backend with data sets, the plan, the options and `routes` on top. */
function backend(routes: Record<string, Handler> = {}, datasets: DatasetInfo[] = [dataset("ds1", "nsmc-slice.tsv")]) {
  return installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/finetune/datasets": () => json({ datasets }),
    "GET /api/finetune/options": () => json(options),
    "GET /api/finetune/plan": (request) => json(plan(Number(new URL(request.url).searchParams.get("gpu_mem_gb")))),
    "GET /api/jobs": () => json({ jobs: [], total: 0, next_cursor: null }),
    ...routes,
  });
}

/** The job's event stream answers `frames()` at each connection, then stays open like a server's. */
function events(frames: () => string[]): Handler {
  return (request) => sse(request, frames(), { hold: true });
}

describe("fine-tuning screen: data sets", () => {
  it("shows a data set's report as a histogram of ratings and the dropped lines by reason", async () => {
    backend();
    renderApp("/finetune");
    const histogram = await screen.findByRole("list", { name: "‘nsmc-slice.tsv’의 별점별 리뷰 수" });
    const rows = within(histogram).getAllByRole("listitem");
    expect(rows).toHaveLength(10);
    expect(rows[9]).toHaveTextContent("★10160");
    expect(rows[0]).toHaveTextContent("★160");
    const dropped = screen.getByRole("list", { name: "버린 줄과 이유" });
    expect(dropped).toHaveTextContent("중복: 3");
    expect(dropped).toHaveTextContent("빈 리뷰: 1");
    expect(screen.getByText("nsmc-tsv 형식 · 10점 척도 · 읽은 줄 504개 중 500개를 씁니다.")).toBeInTheDocument();
  });

  it("uploads a dropped file and shows its report, chosen for training", async () => {
    const stored = [dataset("ds1", "nsmc-slice.tsv")];
    backend({}, stored);
    const sent = installXhr((request) => {
      const file = request.body.get("file") as File;
      const added = dataset("ds2", file.name, {
        report: { ...stored[0]!.report, rating_scale: 5, ratings: { "1": 7, "5": 9 }, dropped: {} },
        scale: 5,
      });
      stored.unshift(added);
      return { status: 201, body: added };
    });
    renderApp("/finetune");
    await screen.findByRole("radio", { name: "nsmc-slice.tsv" });
    const file = new File(["5\t좋아요\n1\t별로\n"], "쇼핑.txt", { type: "text/plain" });
    fireEvent.drop(screen.getByTestId("dataset-dropzone"), { dataTransfer: { files: [file] } });

    const histogram = await screen.findByRole("list", { name: "‘쇼핑.txt’의 별점별 리뷰 수" });
    expect(within(histogram).getAllByRole("listitem")).toHaveLength(5);
    expect(screen.getByRole("radio", { name: "쇼핑.txt" })).toBeChecked();
    expect(screen.getByText("버린 줄이 없습니다.")).toBeInTheDocument();
    expect(screen.getByText("학습 데이터셋: 쇼핑.txt")).toBeInTheDocument();
    expect(sent.map((request) => [request.method, request.url])).toEqual([["POST", "/api/finetune/datasets"]]);
  });

  it("deletes a data set after confirming and says why the server refused one", async () => {
    backend({
      "DELETE /api/finetune/datasets/ds1": () =>
        json({ error: { code: "dataset_in_use", message: "in use", params: { id: "ds1", job_id: "j7" } } }, 409),
    });
    const { user } = renderApp("/finetune");
    await user.click(await screen.findByRole("button", { name: "‘nsmc-slice.tsv’ 데이터셋 삭제" }));
    const dialog = screen.getByRole("dialog", { name: "데이터셋을 삭제할까요?" });
    await user.click(within(dialog).getByRole("button", { name: "삭제" }));
    const alert = await within(dialog).findByRole("alert");
    expect(alert).toHaveTextContent("요청을 처리할 수 없습니다");
    expect(alert).toHaveTextContent("j7");
    expect(screen.getByRole("radio", { name: "nsmc-slice.tsv" })).toBeInTheDocument();
  });
});

describe("fine-tuning screen: plan and start form", () => {
  it("plans memory for the chosen GPU and takes its recommendation into the form", async () => {
    const calls = backend();
    const { user } = renderApp("/finetune");
    await screen.findByRole("table");
    await user.click(screen.getByRole("radio", { name: "8 GiB" }));
    await waitFor(() => expect(calls.some((c) => new URL(c.url).searchParams.get("gpu_mem_gb") === "8")).toBe(true));
    const asked = new URL(calls.filter((c) => c.url.includes("/api/finetune/plan")).at(-1)!.url).searchParams;
    expect(Object.fromEntries(asked)).toEqual({
      model: BASE,
      gpu_mem_gb: "8",
      seq_len: "512",
      micro_batch: "4",
      lora_rank: "16",
    });
    const lora = (await screen.findByRole("rowheader", { name: "LORA" })).closest("tr")!;
    await waitFor(() => expect(within(lora).getAllByText("넘침")).toHaveLength(2));
    expect(lora).toHaveTextContent("22.9 GiB");
    expect(lora).toHaveTextContent("8.0 GiB");

    await user.click(screen.getByRole("radio", { name: "24 GiB" }));
    await waitFor(() => expect(within(lora).getAllByText("들어감")).toHaveLength(2));
    expect(screen.getByText(/LORA, 마이크로 배치 2, 그래디언트 누적 2/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "추천 설정을 학습 양식에 쓰기" }));
    expect(screen.getByRole("spinbutton", { name: "마이크로 배치" })).toHaveValue(2);
    expect(screen.getByRole("spinbutton", { name: "그래디언트 누적" })).toHaveValue(2);
  });

  it("starts with the server's defaults and sends what was changed, then watches the job", async () => {
    let started: Record<string, unknown> | null = null;
    const job = finetuneJob("j2", { status: "queued", governor: null, eta_s: null });
    const calls = backend({
      "POST /api/finetune/jobs": async (request) => {
        started = (await request.json()) as Record<string, unknown>;
        return json(job, 201);
      },
      "GET /api/jobs/j2/events": events(() => [frame("progress", job)]),
    });
    const { user } = renderApp("/finetune");
    expect(await screen.findByRole("textbox", { name: "기본 모델" })).toHaveValue(BASE);
    expect(screen.getByRole("combobox", { name: "방법" })).toHaveValue("lora");
    expect(screen.getByRole("spinbutton", { name: "에포크" })).toHaveValue(1);
    expect(screen.getByRole("spinbutton", { name: "학습률" })).toHaveValue(0.0002);
    expect(screen.getByRole("spinbutton", { name: "LoRA 랭크" })).toHaveValue(16);
    expect(screen.getByRole("spinbutton", { name: "최대 스텝 (에포크 대신)" })).toHaveValue(null);

    await user.type(screen.getByRole("spinbutton", { name: "최대 스텝 (에포크 대신)" }), "6");
    await user.click(screen.getByText("부하 조절"));
    await user.type(screen.getByRole("textbox", { name: "학습 시간대" }), "22:00-08:00");
    await user.type(screen.getByRole("spinbutton", { name: "다른 작업의 CPU 부하 상한 (0-1)" }), "0.5");
    await user.selectOptions(screen.getByRole("combobox", { name: "방법" }), "qlora");
    await user.click(screen.getByRole("button", { name: "학습 시작" }));

    const view = await screen.findByRole("region", { name: "학습 진행" });
    expect(await within(view).findByText("대기 중")).toBeInTheDocument();
    expect(started).toEqual({
      dataset_id: "ds1",
      eval_dataset_id: null,
      model: BASE,
      method: "qlora",
      max_steps: 6,
      governor: { schedule: "22:00-08:00", max_cpu_load: 0.5 },
    });
    expect(window.location.search).toBe("?job=j2");
    expect(localStorage.getItem("rag.finetuneJob")).toBe("j2");
    expect(calls.some((c) => c.url.endsWith("/api/jobs/j2/events"))).toBe(true);
  });

  it("suggests the review writer's base model, so that the adapter can be published to it", async () => {
    backend({
      "GET /api/models": () =>
        json({
          chat: { provider: "fake", name: "fake", base_model: null, device: null, dtype: null, quantization: null },
          reviews: {
            provider: "local",
            name: "local:/srv/models/tiny",
            base_model: "/srv/models/tiny",
            device: "cpu",
            dtype: "float32",
            quantization: null,
            writes_reviews: true,
            loads_adapters: true,
            shares_chat_model: false,
            adapters: [],
          },
        }),
    });
    renderApp("/finetune");
    const model = await screen.findByRole("combobox", { name: "기본 모델" });
    const suggestions = document.getElementById(model.getAttribute("list")!)!;
    expect([...suggestions.querySelectorAll("option")].map((o) => o.value)).toEqual(["/srv/models/tiny"]);
  });

  it("marks a field it cannot read and sends nothing", async () => {
    const calls = backend();
    const { user } = renderApp("/finetune");
    const lr = await screen.findByRole("spinbutton", { name: "학습률" });
    await user.clear(lr);
    const governor = screen.getByText("부하 조절");
    await user.click(governor);
    await user.clear(screen.getByRole("spinbutton", { name: "계산 비율 (0-1)" }));
    await user.click(governor);
    expect(governor.closest("details")).not.toHaveAttribute("open");
    await user.click(screen.getByRole("button", { name: "학습 시작" }));
    expect(lr).toHaveAttribute("aria-invalid", "true");
    expect(lr).toHaveAccessibleDescription(/값을 넣으세요\./);
    // The closed group that holds a field to fix opens.
    expect(governor.closest("details")).toHaveAttribute("open");
    expect(screen.getByRole("spinbutton", { name: "계산 비율 (0-1)" })).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByRole("alert")).toHaveTextContent("표시한 항목을 고친 뒤 다시 시작하세요.");
    expect(calls.some((c) => c.method === "POST")).toBe(false);
  });
});

describe("fine-tuning screen: the job", () => {
  it("draws the loss and throughput as events arrive and shows the governor's state", async () => {
    const first = finetuneJob("j1", { progress: { done: 2, total: 12 }, metrics: [metric(1, 2.5), metric(2, 2.25)] });
    const second = finetuneJob("j1", {
      progress: { done: 4, total: 12 },
      // Each event holds only the steps logged since the one before.
      metrics: [metric(3, 2.0), metric(4, 1.75)],
      eta_s: 3725,
      governor: { state: "paused", reason: "schedule", since: null, resumes_at: "2026-12-01T13:00:00Z" },
    });
    backend({ "GET /api/jobs/j1/events": events(() => [frame("progress", first), frame("progress", second)]) });
    renderApp("/finetune?job=j1");
    const view = await screen.findByRole("region", { name: "학습 진행" });
    const loss = await within(view).findByRole("img", { name: /^손실: 1\.750 \(스텝 4\)/ });
    expect(loss).toHaveAttribute("data-points", "4");
    expect(within(view).getByRole("img", { name: /^토큰\/초: 1,040 \(스텝 4\)/ })).toBeInTheDocument();
    expect(within(view).getByTestId("job-steps")).toHaveTextContent("4 / 12");
    expect(view).toHaveTextContent("1시간 2분");
    expect(within(view).getByRole("progressbar", { name: "학습 진행률" })).toHaveAttribute("aria-valuenow", "33");
    expect(within(view).getByText(/^학습 시간대가 아니라 쉬는 중 · .+에 다시 시작$/)).toBeInTheDocument();
  });

  it("pauses, resumes and cancels through the job's own routes", async () => {
    let current: FinetuneJob = finetuneJob("j1", { progress: { done: 3, total: 12 } });
    const answer = (change: Partial<FinetuneJob>) => () => {
      current = { ...current, ...change };
      return json(current);
    };
    const calls = backend({
      "GET /api/jobs/j1/events": events(() => [frame(current.status === "cancelled" ? "done" : "progress", current)]),
      "POST /api/jobs/j1/pause": answer({
        pause_requested: true,
        governor: { state: "paused", reason: "user", since: null, resumes_at: null },
      }),
      "POST /api/jobs/j1/resume": answer({
        pause_requested: false,
        governor: { state: "running", reason: null, since: null, resumes_at: null },
      }),
      "POST /api/jobs/j1/cancel": answer({ status: "cancelled", governor: null, eta_s: null }),
    });
    const { user } = renderApp("/finetune?job=j1");
    const view = await screen.findByRole("region", { name: "학습 진행" });
    await within(view).findByText("학습 중");
    await user.click(within(view).getByRole("button", { name: "일시 정지" }));
    await within(view).findByText("일시 정지됨");
    await user.click(within(view).getByRole("button", { name: "다시 시작" }));
    await within(view).findByText("학습 중");
    await user.click(within(view).getByRole("button", { name: "학습 취소" }));
    await within(view).findByText("취소됨");
    expect(within(view).queryByRole("button", { name: "일시 정지" })).not.toBeInTheDocument();
    const posted = calls.filter((c) => c.method === "POST").map((c) => new URL(c.url).pathname);
    expect(posted).toEqual(["/api/jobs/j1/pause", "/api/jobs/j1/resume", "/api/jobs/j1/cancel"]);
  });

  it("shows the evaluation as charts and publishes the adapter for the review writer", async () => {
    let current = finetuneJob("j1", {
      status: "succeeded",
      progress: { done: 12, total: 12 },
      metrics: [metric(10, 1.5), metric(12, 1.25)],
      eta_s: null,
      governor: null,
      finetune: { ...finetuneJob("j1").finetune, phase: "done", adapter_ready: true, eval: EVAL },
    });
    const calls = backend({
      "GET /api/jobs/j1/events": events(() => [frame("done", current)]),
      "POST /api/finetune/jobs/j1/publish": async (request) => {
        const { name } = (await request.json()) as { name: string };
        current = { ...current, finetune: { ...current.finetune, published: [name] } };
        return json({ name, path: "/srv/finetune/j1/adapter", origin: "api", run: null });
      },
    });
    const { user } = renderApp("/finetune?job=j1");
    const report = await screen.findByRole("region", { name: "평가" });
    expect(
      within(report).getByRole("img", { name: /긍정: 기본 모델 70\.0%, 기본 모델 \+ 어댑터 95\.0%, 실제 리뷰 90\.0%/ }),
    ).toBeInTheDocument();
    const table = within(report).getByRole("table");
    const rowOf = (name: string) => within(table).getByRole("rowheader", { name }).closest("tr")!;
    expect(rowOf("별점 일치율")).toHaveTextContent("40.0%86.0%80.0%");
    expect(rowOf("퍼플렉서티")).toHaveTextContent("18.509.25–");
    expect(rowOf("distinct-2")).toHaveTextContent("0.7000.8500.900");
    expect(within(report).getByText("시간 아까운 영화")).toBeInTheDocument();

    const publish = screen.getByRole("region", { name: "게시" });
    await user.type(within(publish).getByRole("textbox", { name: "어댑터 이름" }), "reviews-v1");
    await user.click(within(publish).getByRole("button", { name: "게시" }));
    const link = await within(publish).findByRole("link", { name: "‘reviews-v1’로 리뷰 쓰기" });
    expect(link).toHaveAttribute("href", "/reviews?adapter=reviews-v1");
    const sent = calls.find((c) => c.url.endsWith("/api/finetune/jobs/j1/publish"))!;
    expect(await sent.json()).toEqual({ name: "reviews-v1" });
  });

  it("comes back to the job after a reload, from the browser's memory, and lists the jobs", async () => {
    localStorage.setItem("rag.finetuneJob", "j1");
    const job = finetuneJob("j1", { progress: { done: 5, total: 12 }, metrics: [metric(4, 2), metric(5, 1.9)] });
    backend({
      "GET /api/jobs": () =>
        json({
          jobs: [
            { ...job, metrics: [] },
            { id: "i1", kind: "ingest" },
          ],
          total: 2,
          next_cursor: null,
        }),
      "GET /api/jobs/j1/events": events(() => [frame("progress", job)]),
    });
    renderApp("/finetune");
    const view = await screen.findByRole("region", { name: "학습 진행" });
    expect(await within(view).findByTestId("job-steps")).toHaveTextContent("5 / 12");
    const list = await screen.findByRole("region", { name: "학습 작업" });
    expect(within(list).getAllByRole("listitem")).toHaveLength(1);
    expect(within(list).getByRole("link", { current: true })).toHaveAttribute("href", "/finetune?job=j1");
  });
});

describe("fine-tuning screen: evaluating again", () => {
  const DATASETS = [
    dataset("ds1", "nsmc-train.tsv"),
    dataset("ds2", "nsmc-dev.tsv"),
    dataset("ds3", "shopping-dev.tsv"),
  ];

  /** A job that trained on ds1 and was evaluated. */
  function succeeded(evalDatasetId: string | null): FinetuneJob {
    return finetuneJob("j1", {
      status: "succeeded",
      progress: { done: 12, total: 12 },
      eta_s: null,
      governor: null,
      finetune: {
        ...finetuneJob("j1").finetune,
        eval_dataset_id: evalDatasetId,
        phase: "done",
        adapter_ready: true,
        eval: EVAL,
      },
    });
  }

  /** An event stream that sends `before`, then `after` once `gate` opens, then stays open like a server's. */
  function gatedEvents(request: Request, before: string[], gate: Promise<void>, after: string[]): Response {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        request.signal.addEventListener("abort", () =>
          controller.error(new DOMException("The operation was aborted.", "AbortError")),
        );
        for (const text of before) controller.enqueue(encoder.encode(text));
        await gate;
        if (request.signal.aborted) return;
        for (const text of after) controller.enqueue(encoder.encode(text));
      },
    });
    return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
  }

  it("evaluates on the chosen data set and follows the job until the new report replaces the old", async () => {
    const finished = succeeded("ds3");
    const queued: FinetuneJob = {
      ...finished,
      status: "queued",
      finetune: { ...finished.finetune, eval_dataset_id: "ds2", phase: "evaluating", eval: null },
    };
    const evaluating: FinetuneJob = {
      ...queued,
      status: "running",
      governor: { state: "running", reason: null, since: null, resumes_at: null },
    };
    const adapter = EVAL.results.adapter!;
    const report = {
      ...EVAL,
      results: {
        ...EVAL.results,
        adapter: { ...adapter, rating_consistency: { ...adapter.rating_consistency, by_band: { positive: 0.98 } } },
      },
    };
    const evaluated: FinetuneJob = { ...finished, finetune: { ...queued.finetune, phase: "done", eval: report } };
    let current = finished;
    let finishEvaluation!: () => void;
    const evaluationDone = new Promise<void>((resolve) => (finishEvaluation = resolve));
    const calls = backend(
      {
        "GET /api/jobs/j1/events": (request) =>
          current === finished
            ? sse(request, [frame("done", finished)], { hold: true })
            : gatedEvents(request, [frame("progress", evaluating)], evaluationDone, [frame("done", evaluated)]),
        "POST /api/finetune/jobs/j1/evaluate": () => {
          current = queued;
          return json(queued, 202);
        },
      },
      DATASETS,
    );
    const { user } = renderApp("/finetune?job=j1");
    const section = await screen.findByRole("region", { name: "다시 평가" });
    const select = await within(section).findByRole("combobox", { name: "평가 데이터셋" });
    // The job's own eval set comes first; the training set is not offered.
    expect(select).toHaveValue("ds3");
    expect(
      within(select)
        .getAllByRole("option")
        .map((o) => o.textContent),
    ).toEqual(["nsmc-dev.tsv", "shopping-dev.tsv"]);
    const old = screen.getByRole("region", { name: "평가" });
    expect(
      within(old).getByRole("img", { name: /긍정: 기본 모델 70\.0%, 기본 모델 \+ 어댑터 95\.0%/ }),
    ).toBeInTheDocument();

    await user.selectOptions(select, "ds2");
    await user.click(within(section).getByRole("button", { name: "다시 평가" }));
    const view = screen.getByRole("region", { name: "학습 진행" });
    expect(await within(view).findByText("평가 중")).toBeInTheDocument();
    expect(screen.queryByRole("region", { name: "평가" })).not.toBeInTheDocument();
    expect(screen.queryByRole("region", { name: "다시 평가" })).not.toBeInTheDocument();
    const sent = calls.find((c) => c.method === "POST" && c.url.endsWith("/api/finetune/jobs/j1/evaluate"))!;
    expect(await sent.json()).toEqual({ eval_dataset_id: "ds2" });

    finishEvaluation();
    const shown = await screen.findByRole("region", { name: "평가" });
    expect(
      within(shown).getByRole("img", { name: /긍정: 기본 모델 70\.0%, 기본 모델 \+ 어댑터 98\.0%/ }),
    ).toBeInTheDocument();
    expect(within(view).getByText("완료")).toBeInTheDocument();
    expect(within(await screen.findByRole("region", { name: "다시 평가" })).getByRole("combobox")).toHaveValue("ds2");
  });

  it("shows the server's refusal in the UI's language and keeps the report", async () => {
    let answer!: (response: Response) => void;
    const refusal = new Promise<Response>((resolve) => (answer = resolve));
    const calls = backend(
      {
        "GET /api/jobs/j1/events": events(() => [frame("done", succeeded(null))]),
        "POST /api/finetune/jobs/j1/evaluate": () => refusal,
      },
      DATASETS,
    );
    const { user } = renderApp("/finetune?job=j1");
    const section = await screen.findByRole("region", { name: "다시 평가" });
    // A job without an eval set starts at the first data set it did not train on.
    expect(await within(section).findByRole("combobox", { name: "평가 데이터셋" })).toHaveValue("ds2");
    await user.click(within(section).getByRole("button", { name: "다시 평가" }));
    expect(within(section).getByRole("button", { name: "요청하는 중…" })).toBeDisabled();

    answer(json({ error: { code: "dataset_not_found", message: "No data set ds2.", params: { id: "ds2" } } }, 404));
    const alert = await within(section).findByRole("alert");
    expect(alert).toHaveTextContent("찾을 수 없습니다");
    expect(alert).toHaveTextContent("데이터 세트를 찾을 수 없습니다. 이미 지워졌을 수 있습니다.");
    expect(within(section).getByRole("button", { name: "다시 평가" })).toBeEnabled();
    expect(screen.getByRole("region", { name: "평가" })).toBeInTheDocument();
    const sent = calls.find((c) => c.method === "POST" && c.url.endsWith("/api/finetune/jobs/j1/evaluate"))!;
    expect(await sent.json()).toEqual({ eval_dataset_id: "ds2" });
  });

  it.each([
    [
      "running",
      "평가 중",
      finetuneJob("j1", {
        finetune: { ...finetuneJob("j1").finetune, phase: "evaluating", adapter_ready: true, eval_dataset_id: "ds2" },
      }),
    ],
    ["failed", "실패", finetuneJob("j1", { status: "failed", eta_s: null, governor: null })],
  ])("offers no new evaluation for a %s job", async (_status, state, job) => {
    backend({ "GET /api/jobs/j1/events": events(() => [frame("progress", job)]) }, DATASETS);
    renderApp("/finetune?job=j1");
    const view = await screen.findByRole("region", { name: "학습 진행" });
    expect(await within(view).findByText(state)).toBeInTheDocument();
    await screen.findByRole("radio", { name: "nsmc-dev.tsv" });
    expect(screen.queryByRole("region", { name: "다시 평가" })).not.toBeInTheDocument();
  });
});
