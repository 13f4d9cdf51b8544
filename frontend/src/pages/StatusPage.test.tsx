import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { installFetch, json, STATUS } from "../test/fakeFetch";
import { renderApp } from "../test/render";

describe("status screen", () => {
  it("shows the active models, database and failing checks", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
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
    expect(await screen.findByText("설정되지 않음")).toBeInTheDocument();
  });
});
