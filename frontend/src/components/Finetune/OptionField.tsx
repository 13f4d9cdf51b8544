/** One recipe field of the start form: a labelled input of the field's kind, with its error. */
import { useId } from "react";

import { hasMessage, useI18n } from "../../i18n";
import type { FieldInput, FormField, Parsed } from "../../lib/finetuneForm";

type FieldError = Extract<Parsed, { error: string }>["error"];

interface OptionFieldProps {
  field: FormField;
  value: FieldInput;
  error: FieldError | undefined;
  onChange: (value: FieldInput) => void;
  /** Suggestions for a text field (the review writer's base model for `model`). */
  suggestions?: string[];
}

const PLACEHOLDERS: Record<string, string> = { schedule: "22:00-08:00", target_modules: "q_proj,v_proj" };
// Fields whose values are long (a hub id or a server folder) take a whole row.
const WIDE = new Set(["model"]);

export function OptionField({ field, value, error, onChange, suggestions = [] }: OptionFieldProps) {
  const { t } = useI18n();
  const id = useId();
  const { name, help, choices } = field.option;
  const labelKey = `finetune.field.${name}`;
  const label = hasMessage(labelKey) ? t(labelKey) : name;
  const errorId = `${id}-error`;
  const helpId = `${id}-help`;
  const described = [error ? errorId : null, helpId].filter(Boolean).join(" ");
  const common = {
    id,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": described,
  } as const;

  if (field.kind === "bool") {
    return (
      <div className="option-field option-check">
        <label htmlFor={id}>
          <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
          <span>{label}</span>
        </label>
        <p id={helpId} className="muted small option-help" lang="en">
          {help}
        </p>
      </div>
    );
  }

  let control;
  if (field.kind === "choice") {
    control = (
      <select {...common} value={String(value)} onChange={(e) => onChange(e.target.value)}>
        {field.nullable && <option value="">{t("finetune.auto")}</option>}
        {(choices ?? []).map((choice) => (
          <option key={String(choice)} value={String(choice)}>
            {String(choice)}
          </option>
        ))}
      </select>
    );
  } else {
    const numeric = field.kind === "int" || field.kind === "float";
    control = (
      <input
        {...common}
        type={numeric ? "number" : "text"}
        step={field.kind === "int" ? 1 : numeric ? "any" : undefined}
        list={suggestions.length > 0 ? `${id}-list` : undefined}
        value={String(value)}
        autoComplete="off"
        spellCheck={false}
        placeholder={field.nullable ? (PLACEHOLDERS[name] ?? t("finetune.noLimit")) : undefined}
        onChange={(e) => onChange(e.target.value)}
      />
    );
  }
  return (
    <div className={`option-field field ${WIDE.has(name) ? "option-wide" : ""}`}>
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      {control}
      {suggestions.length > 0 && (
        <datalist id={`${id}-list`}>
          {suggestions.map((suggestion) => (
            <option key={suggestion} value={suggestion} />
          ))}
        </datalist>
      )}
      {error && (
        <p id={errorId} className="field-error small">
          {t(`finetune.error.${error}`)}
        </p>
      )}
      <p id={helpId} className="muted small option-help" lang="en">
        {help}
      </p>
    </div>
  );
}
