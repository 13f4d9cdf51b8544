// The browser checks, in the order a person would use the product: enter the API key the server asks
// for, upload, search, ask, open a citation, delete, update a file of many documents, write reviews,
// look at the status, fine-tune the review writer's model and publish the adapter; then the same UI at
// phone width. Screenshots on the way.
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { gunzipSync } from "node:zlib";

// How long a step waits for what it expects: generous, since a loaded 2-core machine can take
// tens of seconds to index or stream; a step that passes never waits longer than it needs.
const WAIT_MS = 90_000;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const QUESTION = "연차 휴가는 며칠인가요?";

/** A file to hand to the file input (Playwright takes paths or buffers, never both in one call). */
async function fixture(dir, name, mimeType) {
  return { name, mimeType, buffer: await readFile(path.join(dir, name)) };
}

/** Screenshot without a hover effect left where the last click happened. */
async function screenshot(page, file, options = {}) {
  await page.mouse.move(0, 0);
  await page.screenshot({ path: file, ...options });
}

async function step(name, action) {
  const started = Date.now();
  await action();
  console.log(`  ✓ ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Fails when the page is wider than its viewport (a sideways scroll on a phone). */
async function assertNoSidewaysScroll(page, width) {
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= width, `page is ${scrollWidth}px wide at a ${width}px viewport`);
}

/** The API as a program calls it, with the key (the page signs its own requests). */
function apiFetch(base, key, route, init = {}) {
  return fetch(`${base}${route}`, { ...init, headers: { ...init.headers, Authorization: `Bearer ${key}` } });
}

async function enterKey(page, base, key) {
  await step("API key: the server asks for one, it is entered and kept", async () => {
    assert.equal((await fetch(`${base}/api/documents`)).status, 401);
    await page.goto("/documents");
    const dialog = page.getByRole("dialog", { name: "API 키" });
    await dialog.getByRole("alert").getByText("API 키가 있어야").waitFor();
    await dialog.getByLabel("API 키").fill(key);
    await dialog.getByRole("button", { name: "키 저장" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByText("아직 문서가 없습니다").waitFor();
    await page.reload();
    await page.getByText("아직 문서가 없습니다").waitFor();
    assert.equal(await page.getByRole("dialog").count(), 0, "the key was not kept across a reload");
  });
}

async function uploadAndSearch(page, shots, fixtures) {
  await step("documents: empty list", async () => {
    await page.goto("/documents");
    await page.getByText("아직 문서가 없습니다").waitFor();
  });

  await step("documents: upload two Korean files and one the indexer cannot read", async () => {
    await page
      .getByTestId("file-input")
      .setInputFiles([
        await fixture(fixtures, "휴가규정.md", "text/markdown"),
        await fixture(fixtures, "복지제도.txt", "text/plain"),
        { name: "설치파일.exe", mimeType: "application/octet-stream", buffer: Buffer.from([0x4d, 0x5a, 0x90, 0x00]) },
      ]);
    const uploads = page.getByRole("list", { name: "올리기 진행 상황" });
    await uploads
      .getByRole("listitem")
      .filter({ hasText: "휴가규정.md" })
      .getByText(/색인됨 · 청크 \d+개/)
      .waitFor();
    await uploads
      .getByRole("listitem")
      .filter({ hasText: "복지제도.txt" })
      .getByText(/색인됨 · 청크 \d+개/)
      .waitFor();
    const rejected = uploads.getByRole("listitem").filter({ hasText: "설치파일.exe" });
    await rejected.getByText("거부됨").waitFor();
    await rejected.getByText("지원하지 않는 형식입니다 (.exe)").waitFor();
    await page.locator(".doc-table tbody tr").nth(1).waitFor();
    assert.equal(await page.locator(".doc-table tbody tr").count(), 2);
  });

  await step("documents: the same file again is reported unchanged", async () => {
    await page.getByTestId("file-input").setInputFiles(await fixture(fixtures, "휴가규정.md", "text/markdown"));
    await page
      .getByRole("list", { name: "올리기 진행 상황" })
      .getByRole("listitem")
      .filter({ hasText: "변경 없음" })
      .waitFor();
    assert.equal(await page.locator(".doc-table tbody tr").count(), 2);
  });

  await step("search playground: ranked chunks with scores for the three modes", async () => {
    await page.getByRole("searchbox", { name: "검색어" }).fill("연차 휴가 이월");
    await page.getByRole("radio", { name: "세 방식 비교" }).check();
    await page.getByRole("button", { name: "검색", exact: true }).click();
    for (const label of ["하이브리드", "의미 (dense)", "키워드 (sparse)"]) {
      const column = page.getByRole("region", { name: label });
      await column.locator(".result").first().waitFor();
      const score = await column.locator(".result-score").first().textContent();
      assert.ok(Number.isFinite(Number(score)), `${label}: score "${score}" is not a number`);
    }
    const topSparse = await page
      .getByRole("region", { name: "키워드 (sparse)" })
      .locator(".result-text")
      .first()
      .textContent();
    assert.match(topSparse, /이월/);
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, path.join(shots, "documents.png"), { fullPage: true });
  });
}

async function chat(page, shots) {
  let answerText = "";
  await step("chat: the answer streams in over SSE", async () => {
    await page.goto("/");
    await page.getByRole("heading", { name: "올린 문서에 대해 물어보세요" }).waitFor();
    const box = page.getByRole("textbox", { name: "질문" });
    await box.fill(QUESTION);
    const streamed = page.waitForResponse((r) => r.url().endsWith("/api/chat/stream"));
    await box.press("Enter");
    const response = await streamed;
    assert.match(response.headers()["content-type"] ?? "", /text\/event-stream/);
    const answer = page.getByRole("article", { name: "답변" }).last();
    await answer.and(page.locator('[aria-busy="false"]')).waitFor();
    await answer.getByRole("button", { name: "출처 1 보기" }).first().waitFor();
    answerText = (await answer.locator(".answer-text").textContent()) ?? "";
    assert.ok(answerText.length > 10, `answer too short: "${answerText}"`);
    await page.getByRole("heading", { level: 1, name: QUESTION }).waitFor();
    await screenshot(page, path.join(shots, "chat.png"));
  });

  await step("chat: copy the answer", async () => {
    await page.getByRole("button", { name: "답변 복사" }).last().click();
    await page.getByRole("button", { name: "복사됨" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(copied, /\[1\]/, "the copied answer keeps its [n] citations");
  });

  await step("chat: a citation opens the passage and its document", async () => {
    await page
      .getByRole("article", { name: "답변" })
      .last()
      .getByRole("button", { name: "출처 1 보기" })
      .first()
      .click();
    const dialog = page.getByRole("dialog", { name: "출처 [1]" });
    await dialog.getByText("인용한 구절").waitFor();
    await dialog.getByText(/청크 \d+개/).waitFor();
    const passage = (await dialog.locator(".passage").textContent()) ?? "";
    assert.match(passage, /휴가/);
    const place = (await dialog.locator(".source-place").textContent()) ?? "";
    assert.match(place, /^(휴가규정\.md|복지제도\.txt)$/, `the dialog names the cited file: "${place}"`);
    await screenshot(page, path.join(shots, "chat-source.png"));
    await dialog.getByRole("link", { name: "문서 목록에서 보기" }).click();
    await page.waitForURL(/\/documents\?doc=/);
    await page.locator(".doc-table tr.is-highlighted").waitFor();
  });
}

async function deleteDocument(page, base, key) {
  await step("documents: delete the cited document after confirming", async () => {
    const row = page.locator(".doc-table tr.is-highlighted");
    await row.getByRole("button", { name: /삭제/ }).click();
    const dialog = page.getByRole("dialog", { name: "문서를 삭제할까요?" });
    await dialog.getByRole("button", { name: "삭제", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await page.locator(".doc-table tbody tr").nth(1).waitFor({ state: "detached" });
    const { documents } = await (await apiFetch(base, key, "/api/documents")).json();
    assert.equal(documents.length, 1, "the backend still lists the deleted document");
  });
}

async function manyDocumentFile(page, base, key) {
  await step("documents: a JSONL of three documents, then again with one line taken out: that one stays", async () => {
    const rows = [
      { id: "faq-parking", text: "주차권은 총무팀에서 한 달 단위로 발급합니다." },
      { id: "faq-printer", text: "3층 복합기는 사원증을 대야 인쇄됩니다." },
      { id: "faq-meal", text: "식대는 한 끼 1만 원까지 법인카드로 결제합니다." },
    ];
    const jsonl = (lines) => ({
      name: "사내FAQ.jsonl",
      mimeType: "application/jsonl",
      buffer: Buffer.from(lines.map((line) => JSON.stringify(line)).join("\n")),
    });
    const uploads = page.getByRole("list", { name: "올리기 진행 상황" }).getByRole("listitem");
    await page.getByTestId("file-input").setInputFiles(jsonl(rows));
    await uploads.filter({ hasText: "문서 3개 · 색인 3" }).waitFor();
    await page.getByTestId("file-input").setInputFiles(jsonl(rows.slice(0, 2)));
    await uploads.filter({ hasText: "문서 2개 · 변경 없음 2" }).waitFor();
    // The web UI never asks for the removal of lines a file no longer holds (replace=true).
    const { documents } = await (await apiFetch(base, key, "/api/documents")).json();
    const faq = documents.map((d) => d.id).filter((id) => id.startsWith("faq-"));
    assert.deepEqual(faq.sort(), ["faq-meal", "faq-parking", "faq-printer"]);
    assert.equal((await apiFetch(base, key, "/api/documents/faq-meal", { method: "DELETE" })).status, 204);
  });
}

async function reloadWhileIndexing(page, base, key) {
  await step("documents: a reload while a file is indexed finds its job and its results", async () => {
    const name = "상품리뷰.jsonl";
    const rows = Array.from({ length: 800 }, (_, i) => ({
      id: `review-${i}`,
      text: `${i + 1}번째 리뷰: 배송이 빠르고 포장이 꼼꼼해서 만족합니다.`,
    }));
    const jsonl = (lines) => ({
      name,
      mimeType: "application/jsonl",
      buffer: Buffer.from(lines.map((line) => JSON.stringify(line)).join("\n")),
    });
    const uploads = page.getByRole("list", { name: "올리기 진행 상황" }).getByRole("listitem");
    // Until the reload the page hears nothing of the job: to the page, the reload comes while it runs.
    await page.route("**/api/jobs/**", () => undefined);
    const accepted = page.waitForResponse(
      (r) => r.request().method() === "POST" && r.url().includes("/api/documents?wait=false"),
    );
    await page.getByTestId("file-input").setInputFiles(jsonl(rows));
    const response = await accepted;
    assert.equal(response.status(), 202);
    const { job_id: jobId } = await response.json();
    await uploads.filter({ hasText: name }).getByText("색인 중…").waitFor();
    await page.waitForFunction((id) => localStorage.getItem("rag.uploadJobs")?.includes(id), jobId);
    await page.unroute("**/api/jobs/**");

    await page.reload();
    const row = uploads.filter({ hasText: name });
    const bar = row.getByRole("progressbar", { name: `‘${name}’ 색인 진행률` });
    const indexed = row.getByText("문서 800개 · 색인 800");
    await bar.or(indexed).first().waitFor();
    // How far the job got when the page found it again is the server's business; the bar, when the
    // job was still running then, says it in the page's words.
    if (await bar.isVisible()) {
      const value = Number(await bar.getAttribute("aria-valuenow"));
      assert.ok(value >= 0 && value <= 100, `progress ${value}`);
    }
    await indexed.waitFor({ timeout: 120_000 });
    const job = await (await apiFetch(base, key, `/api/jobs/${jobId}`)).json();
    assert.equal(job.status, "succeeded");
    assert.equal(job.results.length, 800);
    assert.equal(await page.evaluate(() => localStorage.getItem("rag.uploadJobs")), null, "the job is still kept");

    // The documents go again, so that the screens after this one show what they showed before: a
    // re-upload of one line that asks for replace=true removes the 799 lines the file no longer holds.
    const form = new FormData();
    form.append("files", new Blob([JSON.stringify(rows[0])], { type: "application/jsonl" }), name);
    form.append("replace", "true");
    const synced = await apiFetch(base, key, "/api/documents", { method: "POST", body: form });
    assert.equal(synced.status, 200);
    const outcomes = (await synced.json()).results.map((r) => r.outcome);
    assert.equal(outcomes.filter((o) => o === "removed").length, 799);
    assert.equal(outcomes.filter((o) => o === "unchanged").length, 1);
    assert.equal((await apiFetch(base, key, "/api/documents/review-0", { method: "DELETE" })).status, 204);
  });
}

async function reviews(page, shots) {
  await step("review writer: the configured model writes reviews for the chosen rating", async () => {
    await page.goto("/reviews");
    const generate = page.getByRole("button", { name: "리뷰 쓰기" });
    const guide = page.getByRole("status", { name: "리뷰를 쓸 모델이 설정되지 않았습니다" });
    await generate.or(guide).first().waitFor();
    assert.equal(await guide.isVisible(), false, "the page says no model can write reviews");
    // No adapter is loaded in this configuration: the chooser offers the base model alone, chosen.
    const chooser = page.getByRole("group", { name: "어댑터" });
    assert.equal(await chooser.getByRole("radio").count(), 1);
    assert.ok(await chooser.getByRole("radio", { name: "기본 모델만" }).isChecked(), "the base model is not chosen");
    await page.getByRole("radio", { name: "9점 / 10점" }).check();
    await page.getByRole("textbox", { name: "주제 (선택)" }).fill("동네 빵집");
    await page.getByRole("spinbutton", { name: "리뷰 수" }).fill("2");
    await generate.click();
    const results = page.getByRole("region", { name: "결과" });
    const producedBy = results.locator(".produced-by dd");
    await producedBy.or(guide).first().waitFor();
    assert.equal(await guide.isVisible(), false, "writing reviews ended in the no-model guide");
    // The backend writes reviews with the tests' tiny Llama (REVIEW_PROVIDER=local).
    assert.match(await producedBy.first().textContent(), /tiny-model/);
    assert.equal(await producedBy.nth(1).textContent(), "기본 모델만");
    await results.locator('.review-list[aria-busy="false"]').waitFor();
    assert.equal(await results.locator(".review-text").count(), 2);
    await screenshot(page, path.join(shots, "reviews.png"));
  });
}

/** The header and the first `lines` reviews of an NSMC file, as a user's upload would hold them. */
async function nsmcSlice(nsmc, file, lines) {
  const text = gunzipSync(await readFile(path.join(nsmc, file))).toString("utf8");
  return Buffer.from(
    text
      .split("\n")
      .slice(0, lines + 1)
      .join("\n") + "\n",
  );
}

async function finetune(page, base, key, shots, { reviewModel, nsmc }) {
  await step("fine-tuning: upload a training slice and an eval slice, see their reports", async () => {
    await page.goto("/finetune");
    await page.getByText("아직 데이터셋이 없습니다").waitFor();
    const input = page.getByTestId("dataset-input");
    await input.setInputFiles({
      name: "nsmc-train.tsv",
      mimeType: "text/tab-separated-values",
      buffer: await nsmcSlice(nsmc, "train.tsv.gz", 400),
    });
    const histogram = page.getByRole("list", { name: "‘nsmc-train.tsv’의 별점별 리뷰 수" });
    await histogram.waitFor();
    assert.equal(await histogram.getByRole("listitem").count(), 10);
    await input.setInputFiles({
      name: "nsmc-dev.tsv",
      mimeType: "text/tab-separated-values",
      buffer: await nsmcSlice(nsmc, "dev.tsv.gz", 200),
    });
    await page.getByRole("list", { name: "‘nsmc-dev.tsv’의 별점별 리뷰 수" }).waitFor();
    await page.getByRole("radio", { name: "nsmc-train.tsv" }).check();
    await histogram.waitFor();
  });

  await step("fine-tuning: the memory plan for a chosen GPU", async () => {
    await page.getByRole("radio", { name: "8 GiB", exact: true }).check();
    await page.getByRole("rowheader", { name: "LORA", exact: true }).waitFor();
  });

  let jobId = "";
  await step(
    "fine-tuning: a LoRA job on the tiny model runs to its end with a loss curve and an evaluation",
    async () => {
      await page.getByLabel("기본 모델", { exact: true }).fill(reviewModel);
      await page.getByRole("spinbutton", { name: "최대 스텝 (에포크 대신)" }).fill("6");
      await page.getByText("고급 설정").click();
      await page.getByRole("spinbutton", { name: "기록 간격 (스텝)" }).fill("1");
      await page.getByText("평가 설정").click();
      await page.getByRole("spinbutton", { name: "별점당 생성 수" }).fill("2");
      await page.getByRole("combobox", { name: "평가 데이터셋" }).selectOption({ label: "nsmc-dev.tsv" });
      const started = page.waitForResponse(
        (r) => r.request().method() === "POST" && r.url().endsWith("/api/finetune/jobs"),
      );
      await page.getByRole("button", { name: "학습 시작", exact: true }).click();
      const response = await started;
      assert.equal(response.status(), 201, await response.text());
      jobId = (await response.json()).id;
      await page.waitForURL(`**/finetune?job=${jobId}`);
      const view = page.getByRole("region", { name: "학습 진행" });
      await view.getByText("완료", { exact: true }).waitFor({ timeout: 600_000 });
      assert.equal(await view.getByTestId("job-steps").textContent(), "6 / 6");
      const loss = view.getByRole("img", { name: /^손실: / });
      assert.ok(Number(await loss.getAttribute("data-points")) >= 2, "the loss chart has fewer than two points");
      const report = page.getByRole("region", { name: "평가", exact: true });
      await report.getByRole("rowheader", { name: "별점 일치율" }).waitFor();
      assert.equal(await report.getByRole("columnheader").count(), 4, "base, adapter and real reviews");
      await screenshot(page, path.join(shots, "finetune.png"), { fullPage: true });
    },
  );

  await step("fine-tuning: a reload comes back to the job", async () => {
    await page.goto("/finetune");
    await page.getByRole("region", { name: "학습 진행" }).getByText("완료", { exact: true }).waitFor();
    assert.equal(
      await page.getByRole("region", { name: "학습 작업" }).locator('a[aria-current="true"]').getAttribute("href"),
      `/finetune?job=${jobId}`,
    );
  });

  await step("fine-tuning: the finished job evaluated again, its new report replacing the old", async () => {
    const again = page.getByRole("region", { name: "다시 평가", exact: true });
    const requeued = page.waitForResponse(
      (r) => r.request().method() === "POST" && r.url().endsWith(`/api/finetune/jobs/${jobId}/evaluate`),
    );
    await again.getByRole("combobox", { name: "평가 데이터셋" }).selectOption({ label: "nsmc-dev.tsv" });
    await again.getByRole("button", { name: "다시 평가", exact: true }).click();
    const response = await requeued;
    assert.equal(response.status(), 202, await response.text());
    const report = page.getByRole("region", { name: "평가", exact: true });
    await report.waitFor({ state: "detached" });
    const view = page.getByRole("region", { name: "학습 진행" });
    await view.getByText("완료", { exact: true }).waitFor({ timeout: 600_000 });
    await report.getByRole("rowheader", { name: "별점 일치율" }).waitFor();
    const job = await (await apiFetch(base, key, `/api/jobs/${jobId}`)).json();
    assert.equal(job.finetune.eval.round, 2, "the report shown is not the second evaluation's");
    assert.equal(job.progress.done, 6, "evaluating again trained again");
  });

  await step("fine-tuning: publish the adapter and write with it on the review page", async () => {
    const publish = page.getByRole("region", { name: "게시", exact: true });
    await publish.getByRole("textbox", { name: "어댑터 이름" }).fill("e2e-reviews");
    await publish.getByRole("button", { name: "게시", exact: true }).click();
    await publish.getByRole("link", { name: "‘e2e-reviews’로 리뷰 쓰기" }).click();
    await page.waitForURL("**/reviews?adapter=e2e-reviews");
    const chooser = page.getByRole("group", { name: "어댑터" });
    assert.ok(
      await chooser.getByRole("radio", { name: "e2e-reviews" }).isChecked(),
      "the published adapter is not chosen",
    );
    await page.getByRole("button", { name: "리뷰 쓰기" }).click();
    const producedBy = page.getByRole("region", { name: "결과" }).locator(".produced-by dd");
    await producedBy.nth(1).getByText("e2e-reviews").waitFor();
    const { reviews } = await (await apiFetch(base, key, "/api/models")).json();
    assert.ok(
      reviews.adapters.some((a) => a.name === "e2e-reviews"),
      "the review writer does not list the adapter",
    );
  });
}

async function status(page, shots) {
  await step("status: both model roles, embedded database and health", async () => {
    await page.goto("/status");
    await page.getByText("내장 PostgreSQL").waitFor();
    await page.getByRole("list", { name: "점검 항목" }).waitFor();
    await page.getByText("hash", { exact: false }).first().waitFor();
    for (const [role, provider] of [
      ["채팅 모델", "fake"],
      ["리뷰 모델", "local"],
    ]) {
      const card = page.getByRole("region", { name: role });
      // The role's provider, once /api/models has answered (before, the card shows a spinner).
      await card.locator("dt", { hasText: "제공자" }).waitFor();
      assert.equal(await card.locator("dt:has-text('제공자') + dd").textContent(), provider, `${role}: provider`);
    }
    await screenshot(page, path.join(shots, "status.png"));
  });

  await step("language: the English toggle", async () => {
    await page.getByRole("button", { name: "Switch to English" }).click();
    await page.getByRole("heading", { level: 1, name: "Status" }).waitFor();
    await page.getByRole("button", { name: "한국어로 보기" }).click();
    await page.getByRole("heading", { level: 1, name: "상태" }).waitFor();
  });
}

async function phone(browser, base, storageState, shots) {
  const context = await browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: "ko-KR",
    baseURL: base,
    storageState,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  try {
    await step("phone width: chat keeps the conversation, nothing scrolls sideways", async () => {
      await page.goto("/");
      await page.getByRole("article", { name: "답변" }).first().waitFor();
      await assertNoSidewaysScroll(page, PHONE.width);
      await screenshot(page, path.join(shots, "phone-chat.png"));
      await page.getByRole("button", { name: "대화 목록 열기" }).click();
      await page.getByRole("button", { name: QUESTION, exact: true }).waitFor();
    });
    await step("phone width: documents, reviews, fine-tuning and status fit", async () => {
      for (const route of ["/documents", "/reviews", "/finetune", "/status"]) {
        await page.goto(route);
        await page.locator("h1").first().waitFor();
        await page.waitForLoadState("networkidle");
        await assertNoSidewaysScroll(page, PHONE.width);
      }
      await page.goto("/documents");
      await page.locator(".doc-table tbody tr").first().waitFor();
      await screenshot(page, path.join(shots, "phone-documents.png"));
    });
  } finally {
    await context.close();
  }
}

export async function checks({ browser, base, key, shots, failures, fixtures, reviewModel, nsmc }) {
  const context = await browser.newContext({ viewport: DESKTOP, locale: "ko-KR", baseURL: base, colorScheme: "light" });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  try {
    await enterKey(page, base, key);
    await uploadAndSearch(page, shots, fixtures);
    await chat(page, shots);
    await deleteDocument(page, base, key);
    await manyDocumentFile(page, base, key);
    await reloadWhileIndexing(page, base, key);
    await reviews(page, shots);
    await status(page, shots);
    await finetune(page, base, key, shots, { reviewModel, nsmc });
    await phone(browser, base, await context.storageState(), shots);
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } catch (error) {
    await mkdir(failures, { recursive: true });
    await page.screenshot({ path: path.join(failures, "failure.png"), fullPage: true }).catch(() => undefined);
    throw error;
  } finally {
    await context.close();
  }
}
