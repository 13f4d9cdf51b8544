/**
 * Publish a finished job's adapter to the review writer under a name (no restart), then a link to
 * the review writer with that adapter chosen.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { Link } from "../../hooks/router";
import { useI18n } from "../../i18n";
import { publishAdapter } from "../../lib/finetune";
import type { FinetuneJob } from "../../lib/types";
import { Button } from "../ui/Button";
import { ErrorNotice } from "../ui/Feedback";
import { AdapterNameField } from "../ui/AdapterNameField";

interface PublishFormProps {
  job: FinetuneJob;
  onPublished: () => void;
}

export function PublishForm({ job, onPublished }: PublishFormProps) {
  const { t } = useI18n();
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const publish = useMutation({
    mutationFn: (adapter: string) => publishAdapter(job.id, adapter),
    onSuccess: async () => {
      setName("");
      await Promise.all(["models", "status"].map((key) => queryClient.invalidateQueries({ queryKey: [key] })));
      onPublished();
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    publish.mutate(name.trim());
  };
  // The answer names the adapter at once; the job lists it once its record is read again.
  const published = [...new Set([...job.finetune.published, ...(publish.data ? [publish.data.name] : [])])];

  return (
    <section className="card" aria-labelledby="publish-heading">
      <h2 id="publish-heading">{t("finetune.publishTitle")}</h2>
      <p className="muted small">{t("finetune.publishHelp")}</p>
      <form className="publish-form" onSubmit={submit}>
        <AdapterNameField label={t("finetune.adapterName")} value={name} onChange={setName} />
        <Button type="submit" variant="primary" icon="upload" disabled={publish.isPending || !name.trim()}>
          {publish.isPending ? t("finetune.publishing") : t("finetune.publish")}
        </Button>
      </form>
      {publish.error && <ErrorNotice error={publish.error} />}
      {published.length > 0 && (
        <ul className="published-list" aria-label={t("finetune.publishedList")}>
          {published.map((adapter) => (
            <li key={adapter}>
              <span className="adapter-name">{adapter}</span>
              <Link to={`/reviews?${new URLSearchParams({ adapter })}`}>
                {t("finetune.writeWith", { name: adapter })}
              </Link>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
