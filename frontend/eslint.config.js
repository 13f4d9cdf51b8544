import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "node_modules", "test-results"] },
  {
    files: ["src/**/*.{ts,tsx}"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended, reactHooks.configs.flat.recommended],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ["e2e/**/*.mjs", "*.config.{js,ts}"],
    extends: [js.configs.recommended],
    // Node scripts; the callbacks handed to page.evaluate() run in the browser.
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
