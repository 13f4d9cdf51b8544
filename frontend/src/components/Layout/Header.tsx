/** The top bar: name, the five screens, server health, the API key, language and theme. */
import { useQuery } from "@tanstack/react-query";

import { Link, useRouter } from "../../hooks/router";
import { useTheme } from "../../hooks/useTheme";
import { useI18n, type MessageKey } from "../../i18n";
import { getHealth } from "../../lib/api";
import { announceKeyNeeded } from "../../lib/apiKey";
import { IconButton } from "../ui/Button";
import { Icon, type IconName } from "../ui/Icon";

export const ROUTES: { path: string; label: MessageKey; icon: IconName }[] = [
  { path: "/", label: "nav.chat", icon: "chat" },
  { path: "/documents", label: "nav.documents", icon: "file" },
  { path: "/reviews", label: "nav.reviews", icon: "pen" },
  { path: "/finetune", label: "nav.finetune", icon: "sliders" },
  { path: "/status", label: "nav.status", icon: "pulse" },
];

const HEALTH_MS = 15_000;

export function Header() {
  const { t, lang, setLang } = useI18n();
  const { path } = useRouter();
  const [theme, setTheme] = useTheme();
  const health = useQuery({
    queryKey: ["health"],
    queryFn: ({ signal }) => getHealth(signal),
    refetchInterval: HEALTH_MS,
    retry: false,
  });
  const healthState = health.isPending ? "checking" : health.data?.status === "ok" ? "ok" : "down";
  const healthLabel = t(`health.${healthState}`);

  return (
    <header className="app-header">
      <div className="app-header-inner">
        <Link to="/" className="brand">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <span className="brand-name">rag</span>
          <span className="brand-tagline">{t("app.tagline")}</span>
        </Link>
        <nav className="app-nav" aria-label={t("nav.label")}>
          {ROUTES.map((route) => (
            <Link
              key={route.path}
              to={route.path}
              className="nav-link"
              aria-current={route.path === path ? "page" : undefined}
            >
              <Icon name={route.icon} size={17} />
              <span>{t(route.label)}</span>
            </Link>
          ))}
        </nav>
        <div className="app-tools">
          <span className={`health health-${healthState}`} role="status" title={healthLabel}>
            <span className="dot" aria-hidden="true" />
            <span className="sr-only">{healthLabel}</span>
          </span>
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => announceKeyNeeded("change")}>
            {t("auth.button")}
          </button>
          <button
            type="button"
            className="btn btn-ghost btn-sm lang-toggle"
            aria-label={t("lang.switchLabel")}
            lang={lang === "ko" ? "en" : "ko"}
            onClick={() => setLang(lang === "ko" ? "en" : "ko")}
          >
            <Icon name="globe" size={16} />
            {t("lang.switch")}
          </button>
          <IconButton
            icon={theme === "dark" ? "sun" : "moon"}
            label={theme === "dark" ? t("theme.toLight") : t("theme.toDark")}
            onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
          />
        </div>
      </div>
    </header>
  );
}
