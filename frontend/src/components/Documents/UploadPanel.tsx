/**
 * Drop or pick several files; each is uploaded and indexed on its own (by a job on the server, which
 * goes on when the page is left), with its own progress and result.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useRef, useState, type DragEvent } from "react";

import { useUploads } from "../../hooks/useUploads";
import { useI18n } from "../../i18n";
import { uploadFile } from "../../lib/api";
import { formatBytes } from "../../lib/format";
import type { StatusResponse } from "../../lib/types";
import { checkFile, isFinished, rejectionCode, SUPPORTED_EXTENSIONS } from "../../lib/uploadState";
import { Button } from "../ui/Button";
import { Icon } from "../ui/Icon";
import { UploadList } from "./UploadList";

interface UploadPanelProps {
  limits: StatusResponse["limits"] | undefined;
  collections: string[];
}

export function UploadPanel({ limits, collections }: UploadPanelProps) {
  const { t, locale } = useI18n();
  const queryClient = useQueryClient();
  const [collection, setCollection] = useState("");
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const maxMb = limits?.max_upload_mb ?? null;

  const precheck = useCallback(
    (file: File) => {
      const rejection = checkFile(file, maxMb);
      if (!rejection) return null;
      const message =
        rejection.reason === "type"
          ? t("upload.reasonType", { ext: rejection.ext })
          : rejection.reason === "size"
            ? t("upload.reasonSize", { size: formatBytes(rejection.bytes, locale), max: rejection.maxMb })
            : t("upload.reasonEmpty");
      return { code: rejectionCode(rejection), message };
    },
    [maxMb, t, locale],
  );

  const onSettled = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: ["documents"] });
    void queryClient.invalidateQueries({ queryKey: ["collections"] });
  }, [queryClient]);

  const uploads = useUploads({ upload: uploadFile, collection: collection.trim(), precheck, onSettled });
  const finished = uploads.items.filter(isFinished).length;

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    uploads.add(Array.from(event.dataTransfer.files));
  };

  return (
    <section className="card" aria-labelledby="upload-heading">
      <h2 id="upload-heading">{t("docs.uploadTitle")}</h2>
      <div
        className={`dropzone ${dragging ? "is-dragging" : ""}`}
        data-testid="dropzone"
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <Icon name="upload" size={28} />
        <p className="dropzone-title">{t("docs.drop")}</p>
        <p className="muted small">{t("docs.or")}</p>
        <Button variant="primary" icon="file" onClick={() => input.current?.click()}>
          {t("docs.choose")}
        </Button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          data-testid="file-input"
          accept={SUPPORTED_EXTENSIONS.join(",")}
          onChange={(event) => {
            uploads.add(Array.from(event.target.files ?? []));
            event.target.value = "";
          }}
        />
        <p className="muted small">
          {t("docs.supported", { types: SUPPORTED_EXTENSIONS.join(" "), mb: maxMb ?? "–" })}
        </p>
      </div>
      <div className="upload-options">
        <label className="field field-inline">
          <span className="field-label">{t("docs.collection")}</span>
          <input
            list="collection-names"
            value={collection}
            maxLength={100}
            placeholder={t("docs.collectionPlaceholder")}
            onChange={(event) => setCollection(event.target.value)}
          />
          <datalist id="collection-names">
            {collections.map((name) => (
              <option key={name} value={name} />
            ))}
          </datalist>
        </label>
        {uploads.items.length > 0 && (
          <span className="muted small">{t("upload.filesDone", { done: finished, total: uploads.items.length })}</span>
        )}
        {finished > 0 && (
          <Button size="sm" variant="ghost" onClick={uploads.clearFinished}>
            {t("upload.clear")}
          </Button>
        )}
      </div>
      <UploadList items={uploads.items} onCancel={uploads.cancel} onDismiss={uploads.dismiss} precheck={precheck} />
    </section>
  );
}
