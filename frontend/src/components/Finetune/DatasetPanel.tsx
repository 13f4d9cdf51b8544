/**
 * Review data sets: upload a file (picked or dropped) or name one on the server, see each one's report,
 * choose the one to train on, delete one.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type DragEvent, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { addDatasetPath, deleteDataset, uploadDataset } from "../../lib/finetune";
import { formatBytes, formatDate } from "../../lib/format";
import type { DatasetInfo } from "../../lib/types";
import { Button } from "../ui/Button";
import { ConfirmDialog } from "../ui/ConfirmDialog";
import { ErrorNotice, ProgressBar, Spinner } from "../ui/Feedback";
import { Icon } from "../ui/Icon";
import { DatasetReport } from "./DatasetReport";

export const DATASETS_KEY = ["finetune", "datasets"] as const;
const ACCEPT = [".tsv", ".txt", ".jsonl", ".json", ".csv", ".gz"];

interface DatasetPanelProps {
  datasets: DatasetInfo[];
  selectedId: string | null;
  onSelect: (id: string) => void;
}

export function DatasetPanel({ datasets, selectedId, onSelect }: DatasetPanelProps) {
  const { t, locale } = useI18n();
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const [path, setPath] = useState("");
  const [confirming, setConfirming] = useState<DatasetInfo | null>(null);

  const added = async (dataset: DatasetInfo) => {
    await queryClient.invalidateQueries({ queryKey: DATASETS_KEY });
    onSelect(dataset.id);
  };
  const [sent, setSent] = useState(0);
  const upload = useMutation({
    mutationFn: (file: File) => {
      setSent(0);
      return uploadDataset(file, { onProgress: setSent });
    },
    onSuccess: added,
  });
  const fromPath = useMutation({
    mutationFn: (serverPath: string) => addDatasetPath({ path: serverPath }),
    onSuccess: async (dataset) => {
      setPath("");
      await added(dataset);
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => deleteDataset(id),
    onSuccess: async () => {
      setConfirming(null);
      await queryClient.invalidateQueries({ queryKey: DATASETS_KEY });
    },
  });

  const send = (files: FileList | File[] | null) => {
    const file = files?.[0];
    if (!file) return;
    fromPath.reset();
    upload.mutate(file);
  };
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    send(event.dataTransfer.files);
  };
  const submitPath = (event: FormEvent) => {
    event.preventDefault();
    upload.reset();
    fromPath.mutate(path.trim());
  };

  const busy = upload.isPending || fromPath.isPending;
  const shown = datasets.find((d) => d.id === selectedId) ?? null;

  return (
    <section className="card" aria-labelledby="datasets-heading">
      <h2 id="datasets-heading">{t("finetune.datasetsTitle")}</h2>
      <div
        className={`dropzone dropzone-compact ${dragging ? "is-dragging" : ""}`}
        data-testid="dataset-dropzone"
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <Icon name="upload" size={24} />
        <p className="dropzone-title">{t("finetune.dropHere")}</p>
        <Button variant="primary" icon="file" disabled={busy} onClick={() => input.current?.click()}>
          {t("finetune.chooseFile")}
        </Button>
        <input
          ref={input}
          type="file"
          hidden
          data-testid="dataset-input"
          accept={ACCEPT.join(",")}
          onChange={(event) => {
            send(event.target.files);
            event.target.value = "";
          }}
        />
        <p className="muted small">{t("finetune.formats")}</p>
      </div>
      <form className="dataset-path" onSubmit={submitPath}>
        <label className="field">
          <span className="field-label">{t("finetune.serverPath")}</span>
          <input
            value={path}
            required
            autoComplete="off"
            spellCheck={false}
            placeholder="/data/nsmc/train.tsv.gz"
            onChange={(event) => setPath(event.target.value)}
          />
        </label>
        <Button type="submit" disabled={busy}>
          {t("finetune.addPath")}
        </Button>
      </form>
      {upload.isPending && sent < 1 && <ProgressBar value={sent} label={t("finetune.uploadProgress")} />}
      {busy && <Spinner label={t(upload.isPending && sent < 1 ? "finetune.sending" : "finetune.reading")} />}
      {upload.error && <ErrorNotice error={upload.error} />}
      {fromPath.error && <ErrorNotice error={fromPath.error} />}

      {datasets.length === 0 ? (
        <p className="muted">{t("finetune.noDatasets")}</p>
      ) : (
        <fieldset className="dataset-list">
          <legend className="field-label">{t("finetune.trainOn")}</legend>
          <ul>
            {datasets.map((dataset) => (
              <li key={dataset.id} className={dataset.id === selectedId ? "is-selected" : ""}>
                <label className="dataset-choice">
                  <input
                    type="radio"
                    name="finetune-dataset"
                    checked={dataset.id === selectedId}
                    onChange={() => onSelect(dataset.id)}
                  />
                  <span className="dataset-name break">{dataset.name}</span>
                </label>
                <span className="muted small">
                  {t("finetune.datasetLine", {
                    kept: dataset.report.kept.toLocaleString(locale),
                    scale: dataset.scale,
                    size: formatBytes(dataset.size_bytes, locale),
                    date: formatDate(dataset.created_at, locale),
                  })}
                </span>
                <Button
                  size="sm"
                  variant="ghost"
                  icon="trash"
                  aria-label={t("finetune.deleteLabel", { name: dataset.name })}
                  onClick={() => {
                    remove.reset();
                    setConfirming(dataset);
                  }}
                >
                  {t("common.delete")}
                </Button>
              </li>
            ))}
          </ul>
        </fieldset>
      )}
      {shown && <DatasetReport report={shown.report} name={shown.name} />}
      {confirming && (
        <ConfirmDialog
          title={t("finetune.deleteTitle")}
          busy={remove.isPending}
          onCancel={() => setConfirming(null)}
          onConfirm={() => remove.mutate(confirming.id)}
        >
          <p>{t("finetune.deleteBody", { name: confirming.name })}</p>
          {remove.error && <ErrorNotice error={remove.error} />}
        </ConfirmDialog>
      )}
    </section>
  );
}
