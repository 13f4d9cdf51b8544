/**
 * Status: the two model roles (chat and reviews) side by side, the embedding model, the database,
 * and whether each part is healthy.
 */
import { useQuery } from "@tanstack/react-query";

import { chatView, RoleCard, reviewView } from "../components/Status/RoleCard";
import { StatusCard as Card } from "../components/Status/StatusCard";
import { IconButton } from "../components/ui/Button";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { useI18n } from "../i18n";
import { getHealth, getModels, getReady, getStatus } from "../lib/api";

const REFRESH_MS = 10_000;

export function StatusPage() {
  const { t, locale } = useI18n();
  const refresh = { refetchInterval: REFRESH_MS, retry: false } as const;
  const health = useQuery({ queryKey: ["health"], queryFn: ({ signal }) => getHealth(signal), ...refresh });
  const ready = useQuery({ queryKey: ["ready"], queryFn: ({ signal }) => getReady(signal), ...refresh });
  const status = useQuery({ queryKey: ["status"], queryFn: ({ signal }) => getStatus(signal), ...refresh });
  const models = useQuery({ queryKey: ["models"], queryFn: ({ signal }) => getModels(signal), ...refresh });
  const refetchAll = () => Promise.all([health.refetch(), ready.refetch(), status.refetch(), models.refetch()]);
  const s = status.data;
  const updated = Math.max(health.dataUpdatedAt, status.dataUpdatedAt, health.errorUpdatedAt);
  // The model list has the details; the status answer names the roles while the list cannot be had.
  const roles = models.data;
  const chat = roles ? chatView(roles.chat) : s && chatView(s.llm);
  const reviews = roles ? reviewView(roles.reviews) : s?.reviews && reviewView(s.reviews);
  const rolePending =
    models.isPending || status.isPending ? <Spinner /> : <p className="muted">{t("status.modelsUnavailable")}</p>;

  return (
    <div className="page">
      <div className="page-head">
        <h1 className="page-title">{t("status.title")}</h1>
        <div className="card-tools">
          {updated > 0 && (
            <span className="muted small">
              {t("status.updated", { time: new Date(updated).toLocaleTimeString(locale) })}
            </span>
          )}
          <IconButton icon="refresh" label={t("common.refresh")} onClick={() => void refetchAll()} />
        </div>
      </div>
      {status.error && <ErrorNotice error={status.error} />}
      <div className="status-roles">
        {chat ? (
          <RoleCard title={t("status.chatRole")} role={chat} />
        ) : (
          <Card title={t("status.chatRole")}>{rolePending}</Card>
        )}
        {reviews ? (
          <RoleCard title={t("status.reviewRole")} role={reviews} />
        ) : (
          <Card title={t("status.reviewRole")}>{rolePending}</Card>
        )}
      </div>
      <div className="status-grid">
        <Card title={t("status.server")} ok={health.isPending ? undefined : health.data?.status === "ok"}>
          {health.isPending ? <Spinner /> : <p>{health.data ? t("health.ok") : t("health.down")}</p>}
          {s && <p className="muted small">{t("status.version", { v: s.version })}</p>}
        </Card>

        <Card title={t("status.ready")} ok={ready.data ? ready.data.status === "ready" : undefined}>
          {ready.isPending && <Spinner />}
          {ready.data && (
            <ul className="checks" aria-label={t("status.checks")}>
              {Object.entries(ready.data.checks).map(([name, check]) => (
                <li key={name}>
                  <span className={`dot ${check.ok ? "dot-ok" : "dot-bad"}`} aria-hidden="true" />
                  <span className="check-name">{name}</span>
                  <span className="sr-only">{check.ok ? t("common.ok") : t("common.problem")}</span>
                  <span className="muted small check-detail" title={check.detail}>
                    {check.detail}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </Card>

        {s && (
          <>
            <Card title={t("status.embedding")}>
              <p className="status-value">{s.embedding.name}</p>
              <p className="muted small">
                {s.embedding.provider} · {t("status.dimension", { d: s.embedding.dimension })}
              </p>
            </Card>
            <Card title={t("status.database")} ok={s.database.ok}>
              <p className="status-value">
                {s.database.mode === "embedded" ? t("status.embedded") : t("status.external")}
              </p>
            </Card>
            <Card title={t("status.retrieval")}>
              <p className="status-value">
                {t("status.retrievalValue", { mode: t(`mode.${s.retrieval.mode}`), k: s.retrieval.top_k })}
              </p>
            </Card>
            <Card title={t("status.limits")}>
              <p className="small">
                {t("status.limitsValue", {
                  mb: s.limits.max_upload_mb,
                  n: s.limits.max_files,
                  q: s.limits.max_question_chars.toLocaleString(locale),
                })}
              </p>
            </Card>
          </>
        )}
      </div>
    </div>
  );
}
