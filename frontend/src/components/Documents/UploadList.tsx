/**
 * Each file being uploaded: its progress while it travels and while its job indexes it, then its
 * result and why.
 */
import { useI18n, type Translate } from "../../i18n";
import { ApiError } from "../../lib/api";
import { errorText } from "../../lib/errors";
import type { ErrorInfo, UploadOutcome, UploadResult } from "../../lib/types";
import { formatBytes } from "../../lib/format";
import { isFinished, type UploadItem, type UploadJob } from "../../lib/uploadState";
import { IconButton } from "../ui/Button";
import { Badge, ErrorNotice, ProgressBar, type Tone } from "../ui/Feedback";
import { Icon } from "../ui/Icon";

interface UploadListProps {
  items: UploadItem[];
  onCancel: (id: string) => void;
  onDismiss: (id: string) => void;
  /** The browser's own check of a file, worded in the UI's language (see `UploadPanel`). */
  precheck?: (file: File) => ErrorInfo | null;
}

interface Shown {
  tone: Tone;
  label: string;
}

/** What a finished file shows: why it stopped, if it did, and what became of its documents. */
function outcomes(item: UploadItem, t: Translate): Shown[] {
  if (item.phase !== "error") return [outcomeOf(item.results, t)];
  const stopped: Shown =
    item.error?.code === "cancelled"
      ? { tone: "neutral", label: t("upload.cancelled") }
      : { tone: "danger", label: t("upload.error") };
  // A job stopped part way still says which documents it stored.
  return item.results.length > 0 ? [stopped, outcomeOf(item.results, t)] : [stopped];
}

function outcomeOf(results: UploadResult[], t: Translate): Shown {
  if (results.length > 1) return summary(results, t);
  const result = results[0]!;
  switch (result.outcome) {
    case "indexed":
      return { tone: "success", label: t("upload.indexed", { n: result.chunks }) };
    case "unchanged":
      return { tone: "info", label: t("upload.unchanged") };
    case "removed":
      return { tone: "neutral", label: t("upload.removed") };
    case "failed":
      return { tone: "danger", label: t("upload.failed") };
    case "rejected":
      return { tone: "warning", label: t("upload.rejected") };
  }
}

const COUNTED = ["indexed", "unchanged", "removed", "failed"] as const;

/** A file that holds several documents (.jsonl, .csv): how many went which way. */
function summary(results: UploadResult[], t: Translate): Shown {
  const count = (outcome: UploadOutcome) => results.filter((r) => r.outcome === outcome).length;
  const parts = COUNTED.filter((o) => count(o) > 0).map((o) => t(`upload.count.${o}`, { n: count(o) }));
  const held = results.length - count("removed");
  const failed = count("failed");
  const tone: Tone =
    failed === held ? "danger" : failed > 0 ? "warning" : count("unchanged") === held ? "info" : "success";
  return { tone, label: `${t("upload.documents", { n: held })} · ${parts.join(" · ")}` };
}

/**
 * Why a file was refused or failed. A refusal the browser found is worded again from the file, so it
 * follows the UI's language; the server's reasons are worded from their code.
 */
function reasonFor(item: UploadItem, t: Translate, precheck: UploadListProps["precheck"]): string | null {
  const error = item.results.find((r) => r.error)?.error;
  if (!error) return null;
  const own = item.file ? precheck?.(item.file)?.message : undefined;
  return own ?? errorText(error, t);
}

function Indeterminate({ text }: { text: string }) {
  return (
    <div className="upload-progress">
      <div className="progress progress-indeterminate" aria-hidden="true">
        <div className="progress-bar" />
      </div>
      <span className="small">{text}</span>
    </div>
  );
}

/** The job indexing a file: waiting, how far it got, or being cancelled. */
function JobProgress({ job, name }: { job: UploadJob; name: string }) {
  const { t, locale } = useI18n();
  const cancelling = job.cancelling ? t("upload.cancelling") : null;
  if (job.status === "queued") return <Indeterminate text={cancelling ?? t("upload.jobWaiting")} />;
  if (job.total <= 0) return <Indeterminate text={cancelling ?? t("upload.processing")} />;
  const count = (n: number) => n.toLocaleString(locale);
  return (
    <div className="upload-progress">
      <ProgressBar value={Math.min(1, job.done / job.total)} label={t("upload.jobProgressLabel", { name })} />
      <span className="small">
        {cancelling ?? t("upload.jobProgress", { done: count(job.done), total: count(job.total) })}
      </span>
    </div>
  );
}

export function UploadList({ items, onCancel, onDismiss, precheck }: UploadListProps) {
  const { t, locale } = useI18n();
  if (items.length === 0) return null;
  return (
    <ul className="upload-list" aria-label={t("upload.listLabel")}>
      {items.map((item) => {
        const name = item.name;
        const finished = isFinished(item);
        const shown = finished ? outcomes(item, t) : [];
        const reason = reasonFor(item, t, precheck);
        return (
          <li key={item.id} className={`upload-item phase-${item.phase}`}>
            <Icon name="file" />
            <div className="upload-main">
              <div className="upload-head">
                <span className="upload-name">{name}</span>
                <span className="upload-size">{formatBytes(item.size, locale)}</span>
              </div>
              {item.phase === "queued" && <span className="muted small">{t("upload.queued")}</span>}
              {item.phase === "uploading" && (
                <div className="upload-progress">
                  <ProgressBar value={item.progress} label={name} />
                  <span className="small">{t("upload.uploading", { pct: Math.round(item.progress * 100) })}</span>
                </div>
              )}
              {item.phase === "processing" &&
                (item.job ? (
                  <JobProgress job={item.job} name={name} />
                ) : (
                  <Indeterminate text={t("upload.processing")} />
                ))}
              {shown.length > 0 && (
                <div className="upload-result" role="status">
                  {shown.map(({ tone, label }) => (
                    <Badge key={label} tone={tone}>
                      {label}
                    </Badge>
                  ))}
                  {reason && <span className="upload-reason">{reason}</span>}
                </div>
              )}
              {item.phase === "error" && item.error && item.error.code !== "cancelled" && (
                <ErrorNotice error={new ApiError(0, item.error.code, item.error.message, item.error.params)} />
              )}
            </div>
            {finished ? (
              <IconButton icon="close" label={t("upload.dismiss", { name })} onClick={() => onDismiss(item.id)} />
            ) : (
              <IconButton icon="stop" label={t("upload.cancel", { name })} onClick={() => onCancel(item.id)} />
            )}
          </li>
        );
      })}
    </ul>
  );
}
