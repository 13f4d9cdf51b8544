/** Search mode and top-k for the next questions, in a small popover. */
import { useI18n } from "../../i18n";
import type { ChatSettings as Settings } from "../../hooks/useChat";
import { clampedInt } from "../../lib/format";
import type { SearchMode, StatusResponse } from "../../lib/types";
import { Popover } from "../ui/Popover";
import { Segmented } from "../ui/Segmented";

type ModeChoice = SearchMode | "default";

interface ChatSettingsProps {
  settings: Settings;
  onChange: (settings: Settings) => void;
  defaults: StatusResponse["retrieval"] | undefined;
}

export function ChatSettings({ settings, onChange, defaults }: ChatSettingsProps) {
  const { t } = useI18n();
  const options: { value: ModeChoice; label: string }[] = [
    { value: "default", label: t("chat.default") },
    { value: "hybrid", label: t("mode.hybrid") },
    { value: "dense", label: t("mode.dense") },
    { value: "sparse", label: t("mode.sparse") },
  ];
  return (
    <Popover icon="sliders" label={t("chat.settings")}>
      <Segmented<ModeChoice>
        label={t("chat.mode")}
        value={settings.mode ?? "default"}
        options={options}
        onChange={(mode) => onChange({ ...settings, mode: mode === "default" ? null : mode })}
      />
      <label className="field">
        <span className="field-label">{t("chat.topK")}</span>
        <input
          type="number"
          min={1}
          max={50}
          inputMode="numeric"
          placeholder={defaults ? String(defaults.top_k) : ""}
          value={settings.topK ?? ""}
          onChange={(event) => onChange({ ...settings, topK: clampedInt(event.target.value, 1, 50) })}
        />
      </label>
      {defaults && (
        <p className="muted small">{t("chat.settingsHint", { mode: t(`mode.${defaults.mode}`), k: defaults.top_k })}</p>
      )}
    </Popover>
  );
}
