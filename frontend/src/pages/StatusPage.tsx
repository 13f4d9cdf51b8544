/** Status: which models, database and adapters are active, and whether each part is healthy. */
import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";

import { IconButton } from "../components/ui/Button";
import { Badge, ErrorNotice, Spinner } from "../components/ui/Feedback";
import { useI18n } from "../i18n";
import { getHealth, getModels, getReady, getStatus } from "../lib/api";

const REFRESH_MS = 10_000;

function Card({ title, ok, children }: { title: string; ok?: boolean; children: ReactNode }) {
  const { t } = useI18n();
  return (
    <section className="card status-card">
      <div className="status-card-head">
        <h2>{title}</h2>
        {ok !== undefined && (
          <Badge tone={ok ? "success" : "danger"}>{ok ? t("common.ok") : t("common.problem")}</Badge>
        )}
      </div>
      {children}
    </section>
  );
}

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
            <Card title={t("status.llm")}>
              <p className="status-value">{s.llm.name}</p>
              <p className="muted small">{s.llm.provider}</p>
            </Card>
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

        <Card title={t("status.reviewModel")}>
          {models.isPending && <Spinner />}
          {models.error && <p className="muted">{t("status.modelsUnavailable")}</p>}
          {models.data && (
            <dl className="kv">
              <dt>{t("status.base")}</dt>
              <dd>{models.data.base_model ?? `${models.data.llm.provider} · ${models.data.llm.name}`}</dd>
              <dt>{t("status.adapters")}</dt>
              <dd>{models.data.adapters.length > 0 ? models.data.adapters.join(", ") : t("status.noAdapters")}</dd>
              {models.data.device && (
                <>
                  <dt>{t("status.device")}</dt>
                  <dd>
                    {[models.data.device, models.data.dtype, models.data.quantization].filter(Boolean).join(" · ")}
                  </dd>
                </>
              )}
            </dl>
          )}
        </Card>
      </div>
    </div>
  );
}
