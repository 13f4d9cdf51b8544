/** Review writer: a rating (and optional subject) in, reviews from the fine-tuned model out, streamed. */
import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { ModelGuide } from "../components/Reviews/ModelGuide";
import { ReviewResults } from "../components/Reviews/ReviewResults";
import { StarPicker } from "../components/Reviews/StarPicker";
import { Button } from "../components/ui/Button";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { Segmented } from "../components/ui/Segmented";
import { useReviewWriter } from "../hooks/useReviewWriter";
import { useI18n } from "../i18n";
import { ApiError, getModels } from "../lib/api";
import { clampedInt } from "../lib/format";

type Scale = "5" | "10";

/** No model to write with: the endpoint is missing (404) or the model is not configured (503). */
function isUnconfigured(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 404 || error.code === "model_unavailable");
}

export function ReviewsPage() {
  const { t } = useI18n();
  const models = useQuery({ queryKey: ["models"], queryFn: ({ signal }) => getModels(signal), retry: false });
  const writer = useReviewWriter();
  const [scale, setScale] = useState<Scale>("10");
  const [rating, setRating] = useState(8);
  const [subject, setSubject] = useState("");
  const [count, setCount] = useState(2);
  const [temperature, setTemperature] = useState(0.8);
  // null until the user picks; "" is an explicit choice of the base model alone.
  const [adapter, setAdapter] = useState<string | null>(null);
  const max = Number(scale);
  const adapters = models.data?.adapters ?? [];
  const chosenAdapter = adapter === null ? (adapters[0] ?? null) : adapter || null;

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

  const unconfigured = isUnconfigured(models.error) || isUnconfigured(writer.error);

  return (
    <div className="page">
      <h1 className="page-title">{t("reviews.title")}</h1>
      <p className="muted page-lead">{t("reviews.help")}</p>
      {models.isPending && <Spinner label={t("common.loading")} />}
      {unconfigured && <ModelGuide error={models.error ?? writer.error} />}
      {models.error && !isUnconfigured(models.error) && <ErrorNotice error={models.error} />}
      {models.data && (
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
            {adapters.length > 0 && (
              <label className="field">
                <span className="field-label">{t("reviews.adapter")}</span>
                <select value={chosenAdapter ?? ""} onChange={(e) => setAdapter(e.target.value)}>
                  {adapters.map((name) => (
                    <option key={name} value={name}>
                      {name}
                    </option>
                  ))}
                  <option value="">{t("reviews.noAdapter")}</option>
                </select>
              </label>
            )}
            <p className="muted small">
              {t("reviews.model")}: {models.data.base_model ?? models.data.llm.name}
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
        </div>
      )}
    </div>
  );
}
