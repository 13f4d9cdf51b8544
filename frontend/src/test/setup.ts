import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";

// jsdom lays nothing out, so it has no scrolling to do; the browser tests cover the real thing.
Element.prototype.scrollIntoView = function scrollIntoView() {};
window.scrollTo = () => undefined;

afterEach(() => {
  cleanup();
  localStorage.clear();
});
