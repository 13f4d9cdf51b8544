import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { en } from "./i18n/en";
import { ko } from "./i18n/ko";
import { installFetch, json, STATUS } from "./test/fakeFetch";
import { renderApp } from "./test/render";

describe("application shell", () => {
  it("starts in Korean, switches to English and remembers it", async () => {
    installFetch({ "GET /health": () => json({ status: "ok" }), "GET /api/status": () => json(STATUS) });
    const first = renderApp("/");
    expect(document.documentElement.lang).toBe("ko");
    await first.user.click(screen.getByRole("button", { name: "Switch to English" }));
    expect(screen.getByRole("link", { name: "Documents" })).toBeInTheDocument();
    expect(document.documentElement.lang).toBe("en");
    first.unmount();

    renderApp("/");
    expect(screen.getByRole("link", { name: "Documents" })).toBeInTheDocument();
  });

  it("moves between screens from the menu without reloading", async () => {
    installFetch({
      "GET /health": () => json({ status: "ok" }),
      "GET /api/status": () => json(STATUS),
      "GET /api/documents": () => json({ documents: [] }),
      "GET /api/collections": () => json({ collections: [] }),
    });
    const { user } = renderApp("/");
    await user.click(screen.getByRole("link", { name: "문서" }));
    expect(window.location.pathname).toBe("/documents");
    expect(screen.getByRole("heading", { level: 1, name: "문서" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "문서" })).toHaveAttribute("aria-current", "page");
    expect(await screen.findByText("아직 문서가 없습니다. 위에서 파일을 올려 보세요.")).toBeInTheDocument();
  });

  it("has every string in both languages, none of them empty", () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(ko).sort());
    expect(Object.values({ ...ko, ...en }).filter((text) => text.trim() === "")).toEqual([]);
  });
});
