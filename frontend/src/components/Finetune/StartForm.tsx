/**
 * The start form: the data set (chosen in the list above) and an eval set, the main recipe fields,
 * then the rest behind "advanced", the load governor and the evaluation's settings; every field
 * starts at the server's default.
 */
import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { startFinetune } from "../../lib/finetune";
import {
  buildRequest,
  fieldKey,
  MAIN_FIELDS,
  type BuiltRequest,
  type FieldInput,
  type FormField,
  type FormValues,
} from "../../lib/finetuneForm";
import type { DatasetInfo, FinetuneJob } from "../../lib/types";
import { Button } from "../ui/Button";
import { ErrorNotice } from "../ui/Feedback";
import { OptionField } from "./OptionField";

interface StartFormProps {
  fields: FormField[];
  values: FormValues;
  onChange: (key: string, value: FieldInput) => void;
  datasets: DatasetInfo[];
  datasetId: string | null;
  /** Base models to suggest for `model` (the review writer's, so that the adapter can be published). */
  models: string[];
  onStarted: (job: FinetuneJob) => void;
}

export function StartForm({ fields, values, onChange, datasets, datasetId, models, onStarted }: StartFormProps) {
  const { t } = useI18n();
  const [evalId, setEvalId] = useState("");
  const [errors, setErrors] = useState<BuiltRequest["errors"]>({});
  const start = useMutation({ mutationFn: startFinetune, onSuccess: onStarted });
  const dataset = datasets.find((d) => d.id === datasetId) ?? null;

  const main = MAIN_FIELDS.map((name) => fields.find((f) => f.section === "train" && f.option.name === name)).filter(
    (f): f is FormField => f !== undefined,
  );
  const rest = fields.filter((f) => !main.includes(f));
  const advanced = rest.filter((f) => f.section === "train" || f.section === "data");
  const governor = rest.filter((f) => f.section === "governor");
  const evaluation = rest.filter((f) => f.section === "eval");

  // A group holding a field to fix opens, so that the mark is seen.
  const hasError = (group: FormField[]) => group.some((field) => errors[fieldKey(field)] !== undefined);

  const render = (field: FormField) => {
    const key = fieldKey(field);
    return (
      <OptionField
        key={key}
        field={field}
        value={values[key] ?? ""}
        error={errors[key]}
        suggestions={field.option.name === "model" ? models : undefined}
        onChange={(value) => onChange(key, value)}
      />
    );
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!dataset) return;
    const built = buildRequest(fields, values, dataset.id, evalId || null);
    setErrors(built.errors);
    if (Object.keys(built.errors).length === 0) start.mutate(built.request);
  };

  return (
    <form className="card start-form" aria-labelledby="start-heading" onSubmit={submit} noValidate>
      <h2 id="start-heading">{t("finetune.startTitle")}</h2>
      <p className="small">{dataset ? t("finetune.trainingOn", { name: dataset.name }) : t("finetune.pickDataset")}</p>
      <label className="field">
        <span className="field-label">{t("finetune.evalDataset")}</span>
        <select value={evalId} onChange={(event) => setEvalId(event.target.value)}>
          <option value="">{t("finetune.noEval")}</option>
          {datasets
            .filter((d) => d.id !== datasetId)
            .map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
        </select>
      </label>
      <div className="option-grid">{main.map(render)}</div>
      {advanced.length > 0 && (
        <details className="option-group" open={hasError(advanced) || undefined}>
          <summary>{t("finetune.advanced")}</summary>
          <div className="option-grid">{advanced.map(render)}</div>
        </details>
      )}
      {governor.length > 0 && (
        <details className="option-group" open={hasError(governor) || undefined}>
          <summary>{t("finetune.governorTitle")}</summary>
          <p className="muted small">{t("finetune.governorHelp")}</p>
          <div className="option-grid">{governor.map(render)}</div>
        </details>
      )}
      {evaluation.length > 0 && (
        <details className="option-group" open={hasError(evaluation) || undefined}>
          <summary>{t("finetune.evalSettings")}</summary>
          <div className="option-grid">{evaluation.map(render)}</div>
        </details>
      )}
      {Object.keys(errors).length > 0 && (
        <p className="field-error" role="alert">
          {t("finetune.fixFields")}
        </p>
      )}
      {start.error && <ErrorNotice error={start.error} />}
      <Button type="submit" variant="primary" icon="send" disabled={!dataset || start.isPending}>
        {start.isPending ? t("finetune.starting") : t("finetune.start")}
      </Button>
    </form>
  );
}
