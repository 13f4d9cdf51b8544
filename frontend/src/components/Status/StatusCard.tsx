/** One part of the system on the status page: a title, an optional health badge, what it reports. */
import { useId, type ReactNode } from "react";

import { useI18n } from "../../i18n";
import { Badge } from "../ui/Feedback";

interface StatusCardProps {
  title: string;
  ok?: boolean;
  /** A badge of its own in place of the health badge (a role that is switched off). */
  badge?: ReactNode;
  className?: string;
  children: ReactNode;
}

export function StatusCard({ title, ok, badge, className = "", children }: StatusCardProps) {
  const { t } = useI18n();
  const id = useId();
  return (
    <section className={`card status-card ${className}`} aria-labelledby={id}>
      <div className="status-card-head">
        <h2 id={id}>{title}</h2>
        {badge ??
          (ok !== undefined && (
            <Badge tone={ok ? "success" : "danger"}>{ok ? t("common.ok") : t("common.problem")}</Badge>
          ))}
      </div>
      {children}
    </section>
  );
}
