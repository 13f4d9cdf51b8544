/** A rating picker: one radio button per star, so arrow keys move the rating and screen readers read it. */
import { useId, useState } from "react";

import { useI18n } from "../../i18n";
import { Icon } from "../ui/Icon";

interface StarPickerProps {
  value: number;
  scale: number;
  onChange: (value: number) => void;
}

export function StarPicker({ value, scale, onChange }: StarPickerProps) {
  const { t } = useI18n();
  const name = useId();
  const [hover, setHover] = useState<number | null>(null);
  const shown = hover ?? value;
  return (
    <fieldset className="stars" onMouseLeave={() => setHover(null)}>
      <legend className="field-label">{t("reviews.rating")}</legend>
      <div className="stars-row">
        {Array.from({ length: scale }, (_, i) => i + 1).map((n) => (
          <label key={n} className={`star ${n <= shown ? "is-on" : ""}`} onMouseEnter={() => setHover(n)}>
            <input
              type="radio"
              name={name}
              value={n}
              checked={n === value}
              onChange={() => onChange(n)}
              aria-label={t("reviews.ratingValue", { r: n, scale })}
            />
            <Icon name="star" size={26} filled={n <= shown} />
          </label>
        ))}
        <output className="stars-value" aria-hidden="true">
          {t("reviews.ratingValue", { r: value, scale })}
        </output>
      </div>
    </fieldset>
  );
}
