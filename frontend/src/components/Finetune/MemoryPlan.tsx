/**
 * What fits on which GPU (`rag finetune plan`): a GPU memory size, chosen from common cards or typed,
 * then per method the memory it needs with and without gradient checkpointing, and the setting the
 * planner recommends, which the start form can take over.
 */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { useI18n } from "../../i18n";
import { getPlan } from "../../lib/finetune";
import type { MemoryEstimate, PlanQuery, PlanRecommendation } from "../../lib/types";
import { Button } from "../ui/Button";
import { Badge, ErrorNotice, Spinner } from "../ui/Feedback";
import { Segmented } from "../ui/Segmented";

const PRESETS = ["4", "8", "12", "16", "24", "48", "80"] as const;
const OTHER = "other";

interface MemoryPlanProps {
  /** Model and shape from the start form; the GPU size is chosen here. */
  query: Omit<PlanQuery, "gpu_mem_gb">;
  onApply: (recommendation: PlanRecommendation) => void;
}

export function MemoryPlan({ query, onApply }: MemoryPlanProps) {
  const { t } = useI18n();
  const [preset, setPreset] = useState<string>("24");
  const [typed, setTyped] = useState("");
  const typedGb = Number(typed);
  const gpuGb = preset === OTHER ? (typed.trim() && typedGb > 0 ? typedGb : null) : Number(preset);
  const full = gpuGb === null ? null : { ...query, gpu_mem_gb: gpuGb };
  const plan = useQuery({
    queryKey: ["finetune", "plan", full],
    queryFn: ({ signal }) => getPlan(full!, signal),
    enabled: full !== null && query.model.trim() !== "",
    placeholderData: keepPreviousData,
    retry: false,
  });
  const fits = (estimate: MemoryEstimate) => gpuGb !== null && estimate.required_gib <= gpuGb;
  const cell = (estimate: MemoryEstimate) => (
    <td>
      <span className="plan-gib">{t("finetune.gib", { n: estimate.required_gib.toFixed(1) })}</span>{" "}
      {fits(estimate) ? (
        <Badge tone="success">{t("finetune.fits")}</Badge>
      ) : (
        <Badge tone="danger">{t("finetune.tooBig")}</Badge>
      )}
    </td>
  );
  const recommendation = plan.data?.recommendation;

  return (
    <section className="card" aria-labelledby="plan-heading">
      <h2 id="plan-heading">{t("finetune.planTitle")}</h2>
      <p className="muted small">{t("finetune.planHelp")}</p>
      <div className="plan-gpu">
        <Segmented
          label={t("finetune.gpuMemory")}
          value={preset}
          options={[
            ...PRESETS.map((gb) => ({ value: gb, label: t("finetune.gib", { n: gb }) })),
            { value: OTHER, label: t("finetune.otherGpu") },
          ]}
          onChange={setPreset}
        />
        {preset === OTHER && (
          <label className="field field-inline">
            <span className="field-label">{t("finetune.gpuGib")}</span>
            <input
              type="number"
              min={0.5}
              max={1024}
              step={0.5}
              value={typed}
              onChange={(event) => setTyped(event.target.value)}
            />
          </label>
        )}
      </div>
      {plan.isFetching && !plan.data && <Spinner label={t("common.loading")} />}
      {plan.error && <ErrorNotice error={plan.error} />}
      {plan.data && (
        <>
          <div className="table-scroll">
            <table className="plan-table">
              <caption className="sr-only">{t("finetune.planCaption", { gb: plan.data.gpu_mem_gb })}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("finetune.method")}</th>
                  <th scope="col">{t("finetune.withoutCheckpointing")}</th>
                  <th scope="col">{t("finetune.withCheckpointing")}</th>
                </tr>
              </thead>
              <tbody>
                {Object.values(plan.data.methods).map((method) => (
                  <tr key={method.method}>
                    <th scope="row">{method.method.toUpperCase()}</th>
                    {cell(method.without_checkpointing)}
                    {cell(method.with_checkpointing)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {recommendation ? (
            <div className="plan-recommendation" role="status">
              <p>
                <strong>{t("finetune.recommended")}</strong>{" "}
                {t("finetune.recommendation", {
                  method: recommendation.method.toUpperCase(),
                  micro: recommendation.micro_batch,
                  accum: recommendation.gradient_accumulation,
                  checkpointing: recommendation.gradient_checkpointing ? t("finetune.on") : t("finetune.off"),
                })}
              </p>
              <p className="muted small" lang="en">
                {recommendation.reason}
              </p>
              <Button size="sm" onClick={() => onApply(recommendation)}>
                {t("finetune.applyRecommendation")}
              </Button>
            </div>
          ) : (
            <p className="notice notice-error" role="status">
              {t("finetune.nothingFits")}
            </p>
          )}
        </>
      )}
    </section>
  );
}
