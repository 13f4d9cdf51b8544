/**
 * One model role on the status page: its provider and model, how a local one is loaded, and (the
 * review role) its adapters, or plainly that review writing is off. Built from `/api/models`, or
 * from the shorter `/api/status` while the model list cannot be had.
 */
import { Fragment } from "react";

import { useI18n } from "../../i18n";
import type { ModelRole, ProviderInfo, ReviewRole, ReviewStatus } from "../../lib/types";
import { Badge } from "../ui/Feedback";
import { StatusCard } from "./StatusCard";

/** What the card shows of a role, whichever endpoint it came from. */
export interface RoleView {
  provider: string;
  name: string | null;
  /** How a local model is loaded; null for a remote one or when only `/api/status` answered. */
  loaded: Pick<ModelRole, "device" | "dtype" | "quantization"> | null;
  /** The adapters' names; null for the chat role. */
  adapters: string[] | null;
  off: boolean;
  sharesChatModel: boolean;
}

export function chatView(role: ModelRole | ProviderInfo): RoleView {
  const loaded = "device" in role && role.device ? role : null;
  return { provider: role.provider, name: role.name, loaded, adapters: null, off: false, sharesChatModel: false };
}

export function reviewView(role: ReviewRole | ReviewStatus): RoleView {
  const full = "writes_reviews" in role;
  return {
    provider: role.provider,
    name: role.name,
    loaded: full && role.device ? role : null,
    adapters: full ? role.adapters.map((adapter) => adapter.name) : role.adapters,
    off: full ? !role.writes_reviews : role.provider === "none",
    sharesChatModel: role.shares_chat_model,
  };
}

export function RoleCard({ title, role }: { title: string; role: RoleView }) {
  const { t } = useI18n();
  if (role.off) {
    return (
      <StatusCard title={title} badge={<Badge tone="warning">{t("status.off")}</Badge>}>
        <p className="status-value">{t("status.reviewsOff")}</p>
        <p className="muted small">{t("status.reviewsOffHint")}</p>
      </StatusCard>
    );
  }
  const rows: [string, string][] = [
    [t("status.provider"), role.provider],
    [t("status.model"), role.name ?? t("common.none")],
  ];
  if (role.loaded) {
    rows.push(
      [t("status.device"), role.loaded.device ?? t("common.none")],
      [t("status.dtype"), role.loaded.dtype ?? t("common.none")],
      [t("status.quantization"), role.loaded.quantization ?? t("common.none")],
    );
  }
  if (role.adapters) {
    rows.push([t("status.adapters"), role.adapters.length > 0 ? role.adapters.join(", ") : t("status.noAdapters")]);
  }
  return (
    <StatusCard title={title}>
      <dl className="kv">
        {rows.map(([label, value]) => (
          <Fragment key={label}>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </Fragment>
        ))}
      </dl>
      {role.sharesChatModel && <p className="muted small">{t("status.sharesChatModel")}</p>}
    </StatusCard>
  );
}
