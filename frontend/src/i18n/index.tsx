/** Language selection and the `t()` lookup used by every component. */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";

import { en } from "./en";
import { ko, type MessageKey, type Messages } from "./ko";

export type Lang = "ko" | "en";
export type { MessageKey };
export type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

const dictionaries: Record<Lang, Messages> = { ko, en };
const STORAGE_KEY = "rag.lang";

/** Fill `{name}` placeholders; unknown placeholders stay visible so a missing value is noticed. */
export function format(template: string, params?: Record<string, string | number>): string {
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (match, name: string) => (name in params ? String(params[name]) : match));
}

/** True when `key` names a text, for keys built at run time (such as `errorCode.${code}`). */
export function hasMessage(key: string): key is MessageKey {
  return Object.hasOwn(ko, key);
}

export function translator(lang: Lang): Translate {
  const messages = dictionaries[lang];
  return (key, params) => format(messages[key], params);
}

interface I18n {
  lang: Lang;
  locale: string;
  t: Translate;
  setLang: (lang: Lang) => void;
}

const I18nContext = createContext<I18n | null>(null);

function initialLang(): Lang {
  const stored = localStorage.getItem(STORAGE_KEY);
  return stored === "en" || stored === "ko" ? stored : "ko";
}

export function I18nProvider({ children, lang: fixed }: { children: ReactNode; lang?: Lang }) {
  const [lang, setLangState] = useState<Lang>(() => fixed ?? initialLang());

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);

  const setLang = useCallback((next: Lang) => {
    localStorage.setItem(STORAGE_KEY, next);
    setLangState(next);
  }, []);

  const value = useMemo<I18n>(
    () => ({ lang, locale: lang === "ko" ? "ko-KR" : "en-US", t: translator(lang), setLang }),
    [lang, setLang],
  );
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(I18nContext);
  if (!value) throw new Error("useI18n must be used inside <I18nProvider>");
  return value;
}
