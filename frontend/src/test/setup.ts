import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";

// findBy / waitFor give up after this long: a loaded machine can take seconds to render what a
// test waits for, and a test that waits for the right thing only gets slower, never wrong.
configure({ asyncUtilTimeout: 10_000 });

// jsdom lays nothing out, so it has no scrolling to do; the browser tests cover the real thing.
Element.prototype.scrollIntoView = function scrollIntoView() {};
window.scrollTo = () => undefined;

afterEach(() => {
  cleanup();
  localStorage.clear();
});
