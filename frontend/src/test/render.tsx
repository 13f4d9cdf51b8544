/** Render the whole application at a path, as the browser would open it. */
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { App } from "../App";

export function renderApp(path = "/") {
  window.history.pushState(null, "", path);
  const user = userEvent.setup();
  return { user, ...render(<App />) };
}
