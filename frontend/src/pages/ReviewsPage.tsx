/**
 * Review writer: a rating (and optional subject) in, reviews from the review model (`REVIEW_PROVIDER`)
 * out, streamed; with the base model or one of its loaded adapters, and, for a local model, a panel
 * that loads and unloads adapters while the server runs.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";

import { AdapterAdmin } from "../components/Reviews/AdapterAdmin";
import { AdapterChooser } from "../components/Reviews/AdapterChooser";
import { ModelGuide } from "../components/Reviews/ModelGuide";
import { ReviewResults } from "../components/Reviews/ReviewResults";
import { StarPicker } from "../components/Reviews/StarPicker";
import { Button } from "../components/ui/Button";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { Segmented } from "../components/ui/Segmented";
import { useRouter } from "../hooks/router";
import { useReviewWriter } from "../hooks/useReviewWriter";
import { useI18n } from "../i18n";
import { ApiError, getModels } from "../lib/api";
import { clampedInt } from "../lib/format";

type Scale = "5" | "10";

/** No model to write with: the endpoint is missing (404) or the model is not configured (503). */
function isUnconfigured(error: unknown): boolean {
  return (
    error instanceof ApiError &&
    ((error.status === 404 && error.code === "not_found") || error.code === "model_unavailable")
  );
}

export function ReviewsPage() {
  const { t } = useI18n();
  const models = useQuery({ queryKey: ["models"], queryFn: ({ signal }) => getModels(signal), retry: false });
  const writer = useReviewWriter();
  const queryClient = useQueryClient();
  const [scale, setScale] = useState<Scale>("10");
  const [rating, setRating] = useState(8);
  const [subject, setSubject] = useState("");
  const [count, setCount] = useState(2);
  const [temperature, setTemperature] = useState(0.8);
  // null until the user picks; "" is an explicit choice of the base model alone. A link may name one
  // (`?adapter=`, as the fine-tuning page does after publishing).
  const { query } = useRouter();
  const [adapter, setAdapter] = useState<string | null>(() => query.get("adapter"));
  const max = Number(scale);
  const role = models.data?.reviews;
  const adapters = role?.adapters ?? [];
  // The first adapter until one is picked, and again when the picked one has been unloaded.
  const picked = adapter === "" || adapters.some((a) => a.name === adapter) ? adapter : null;
  const chosenAdapter = picked === null ? (adapters[0]?.name ?? null) : picked || null;

  // The chosen adapter was unloaded elsewhere (another tab, the CLI): show the list as it is now.
  useEffect(() => {
    if (writer.error?.code === "unknown_adapter") void queryClient.invalidateQueries({ queryKey: ["models"] });
  }, [writer.error, queryClient]);

  const changeScale = (next: Scale) => {
    // Keep the same sentiment when switching: 8/10 becomes 4/5.
    setRating((r) => Math.max(1, Math.round((r * Number(next)) / max)));
    setScale(next);
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void writer.generate({
      rating,
      scale: max as 5 | 10,
      n: count,
      temperature,
      adapter: chosenAdapter,
      ...(subject.trim() ? { subject: subject.trim() } : {}),
    });
  };

  const off = role !== undefined && !role.writes_reviews;
  const unconfigured = off || isUnconfigured(models.error) || isUnconfigured(writer.error);

  return (
    <div className="page">
      <h1 className="page-title">{t("reviews.title")}</h1>
      <p className="muted page-lead">{t("reviews.help")}</p>
      {models.isPending && <Spinner label={t("common.loading")} />}
      {unconfigured && <ModelGuide off={off} error={models.error ?? writer.error} />}
      {models.error && !isUnconfigured(models.error) && <ErrorNotice error={models.error} />}
      {role && !off && (
        <div className="reviews-layout">
          <form className="card review-form" onSubmit={submit}>
            <Segmented<Scale>
              label={t("reviews.scale")}
              value={scale}
              options={[
                { value: "5", label: t("reviews.scale5") },
                { value: "10", label: t("reviews.scale10") },
              ]}
              onChange={changeScale}
            />
            <StarPicker value={Math.min(rating, max)} scale={max} onChange={setRating} />
            <label className="field">
              <span className="field-label">{t("reviews.subject")}</span>
              <input
                value={subject}
                maxLength={200}
                placeholder={t("reviews.subjectPlaceholder")}
                onChange={(e) => setSubject(e.target.value)}
              />
            </label>
            <div className="field-row">
              <label className="field">
                <span className="field-label">{t("reviews.count")}</span>
                <input
                  type="number"
                  min={1}
                  max={8}
                  value={count}
                  onChange={(e) => setCount(clampedInt(e.target.value, 1, 8) ?? 1)}
                />
              </label>
              <label className="field">
                <span className="field-label">
                  {t("reviews.temperature")} <output>{temperature.toFixed(1)}</output>
                </span>
                <input
                  type="range"
                  min={0.1}
                  max={1.5}
                  step={0.1}
                  value={temperature}
                  onChange={(e) => setTemperature(Number(e.target.value))}
                />
              </label>
            </div>
            <AdapterChooser
              base={role.base_model ?? role.name}
              adapters={adapters}
              value={chosenAdapter}
              onChange={(name) => setAdapter(name ?? "")}
            />
            <p className="muted small break">
              {t("reviews.model")}: {role.name ?? role.provider}
            </p>
            {writer.status === "streaming" ? (
              <Button variant="danger" icon="stop" onClick={writer.stop}>
                {t("reviews.stop")}
              </Button>
            ) : (
              <Button type="submit" variant="primary" icon="pen">
                {t("reviews.generate")}
              </Button>
            )}
          </form>

          <section className="card review-output" aria-labelledby="results-heading">
            <h2 id="results-heading">{t("reviews.results")}</h2>
            {writer.error && !unconfigured && <ErrorNotice error={writer.error} />}
            <ReviewResults state={writer} scale={max} />
          </section>
          {role.loads_adapters && <AdapterAdmin adapters={adapters} onLoaded={setAdapter} />}
        </div>
      )}
    </div>
  );
}
