/**
 * Which weights write the reviews: the base model alone or one of the loaded adapters, each with the
 * record of its training run. Native radio buttons, so arrow keys move the choice; each record is the
 * description of its button.
 */
import { useId } from "react";

import { useI18n } from "../../i18n";
import type { AdapterInfo } from "../../lib/types";
import { RunRecord } from "./RunRecord";

interface AdapterChooserProps {
  base: string | null;
  adapters: AdapterInfo[];
  /** The chosen adapter's name; null for the base model alone. */
  value: string | null;
  onChange: (adapter: string | null) => void;
}

export function AdapterChooser({ base, adapters, value, onChange }: AdapterChooserProps) {
  const { t } = useI18n();
  const id = useId();
  return (
    <fieldset className="adapter-chooser">
      <legend className="field-label">{t("reviews.adapter")}</legend>
      <ul className="adapter-options">
        {adapters.map((adapter, index) => (
          <li key={adapter.name} className={`adapter-option ${adapter.name === value ? "is-selected" : ""}`}>
            <label>
              <input
                type="radio"
                name={id}
                value={adapter.name}
                checked={adapter.name === value}
                onChange={() => onChange(adapter.name)}
                aria-describedby={`${id}-${index}`}
              />
              <span className="adapter-name">{adapter.name}</span>
            </label>
            <RunRecord id={`${id}-${index}`} run={adapter.run} />
          </li>
        ))}
        <li className={`adapter-option ${value === null ? "is-selected" : ""}`}>
          <label>
            <input
              type="radio"
              name={id}
              value=""
              checked={value === null}
              onChange={() => onChange(null)}
              aria-describedby={`${id}-base`}
            />
            <span className="adapter-base">{t("reviews.baseOnly")}</span>
          </label>
          <p id={`${id}-base`} className="muted small break">
            {base ?? t("common.none")}
          </p>
        </li>
      </ul>
      {adapters.length === 0 && <p className="muted small">{t("models.noAdapters")}</p>}
    </fieldset>
  );
}
