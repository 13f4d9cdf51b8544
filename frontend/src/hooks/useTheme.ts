/** Light or dark theme: the system's choice until the user picks one, which is then remembered. */
import { useEffect } from "react";

import { useStoredState } from "./useStoredState";

export type Theme = "light" | "dark";

const isTheme = (value: unknown): value is Theme | null => value === null || value === "light" || value === "dark";

export function useTheme(): [Theme, (theme: Theme) => void] {
  const [chosen, setChosen] = useStoredState<Theme | null>("rag.theme", null, isTheme);
  const system: Theme = window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  const theme = chosen ?? system;
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return [theme, setChosen];
}
