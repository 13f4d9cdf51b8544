/** Status primitives: error notices, spinners, progress bars, badges. */
import type { ReactNode } from "react";

import { useI18n } from "../../i18n";
import { describeError } from "../../lib/errors";

export function ErrorNotice({ error, children }: { error: unknown; children?: ReactNode }) {
  const { t } = useI18n();
  const problem = describeError(error, t);
  return (
    <div className="notice notice-error" role="alert">
      <strong>{t(problem.title)}</strong>
      {problem.detail && <p>{problem.detail}</p>}
      {problem.hint && <p>{t(problem.hint)}</p>}
      {children}
    </div>
  );
}

export function Spinner({ label }: { label?: string }) {
  return (
    <span className="spinner-wrap" role={label ? "status" : undefined}>
      <span className="spinner" aria-hidden="true" />
      {label && <span>{label}</span>}
    </span>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const percent = Math.round(value * 100);
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
    >
      <div className="progress-bar" style={{ width: `${percent}%` }} />
    </div>
  );
}

export type Tone = "neutral" | "success" | "warning" | "danger" | "info";

export function Badge({ tone = "neutral", children }: { tone?: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}
