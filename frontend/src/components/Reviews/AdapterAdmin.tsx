/**
 * Load an adapter from a folder on the server, or unload one, while the server runs. Each change
 * refreshes the model list, so the chooser and the status page show it at once. Adapters named in
 * REVIEW_ADAPTERS load at every start and are changed there, so they have no unload button.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { loadAdapter, unloadAdapter } from "../../lib/api";
import type { AdapterInfo, AdapterLoadRequest } from "../../lib/types";
import { Button } from "../ui/Button";
import { ErrorNotice } from "../ui/Feedback";
import { AdapterNameField } from "../ui/AdapterNameField";

interface Done {
  message: "models.loaded" | "models.unloaded";
  name: string;
}

interface AdapterAdminProps {
  adapters: AdapterInfo[];
  /** Called with the name of an adapter once it is loaded. */
  onLoaded: (name: string) => void;
}

export function AdapterAdmin({ adapters, onLoaded }: AdapterAdminProps) {
  const { t } = useI18n();
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [path, setPath] = useState("");
  // What the last change did, worded at render time so that it follows the language toggle.
  const [done, setDone] = useState<Done | null>(null);

  const refresh = () =>
    Promise.all(["models", "status"].map((key) => queryClient.invalidateQueries({ queryKey: [key] })));

  const load = useMutation({
    mutationFn: (request: AdapterLoadRequest) => loadAdapter(request),
    onMutate: () => setDone(null),
    onSuccess: async (_, request) => {
      await refresh();
      setName("");
      setPath("");
      setDone({ message: "models.loaded", name: request.name });
      onLoaded(request.name);
    },
  });

  const unload = useMutation({
    mutationFn: (adapter: string) => unloadAdapter(adapter),
    onMutate: () => setDone(null),
    onSuccess: async (_, adapter) => {
      await refresh();
      setDone({ message: "models.unloaded", name: adapter });
    },
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    unload.reset();
    load.mutate({ name: name.trim(), path: path.trim() });
  };

  const busy = load.isPending || unload.isPending;

  return (
    <section className="card adapter-admin" aria-labelledby="adapter-admin-heading">
      <h2 id="adapter-admin-heading">{t("models.manage")}</h2>
      <p className="muted small">{t("models.manageHelp")}</p>
      <form className="adapter-load" onSubmit={submit}>
        <AdapterNameField label={t("models.name")} value={name} onChange={setName} />
        <label className="field adapter-path">
          <span className="field-label">{t("models.path")}</span>
          <input
            value={path}
            required
            autoComplete="off"
            spellCheck={false}
            placeholder={t("models.pathPlaceholder")}
            onChange={(e) => setPath(e.target.value)}
          />
        </label>
        <Button type="submit" variant="primary" icon="upload" disabled={busy}>
          {load.isPending ? t("models.loading") : t("models.load")}
        </Button>
      </form>
      {load.error && <ErrorNotice error={load.error} />}
      {unload.error && <ErrorNotice error={unload.error} />}
      <p className="small" role="status">
        {done && t(done.message, { name: done.name })}
      </p>
      {adapters.length > 0 && (
        <ul className="adapter-loaded" aria-label={t("models.loadedList")}>
          {adapters.map((adapter) => (
            <li key={adapter.name}>
              <span className="adapter-name">{adapter.name}</span>
              <span className="muted small break">{adapter.path}</span>
              {adapter.origin === "settings" ? (
                <span className="muted small">{t("models.fromSettings")}</span>
              ) : (
                <Button
                  size="sm"
                  variant="ghost"
                  icon="trash"
                  disabled={busy}
                  aria-label={t("models.unloadLabel", { name: adapter.name })}
                  onClick={() => {
                    load.reset();
                    unload.mutate(adapter.name);
                  }}
                >
                  {unload.isPending && unload.variables === adapter.name ? t("models.unloading") : t("models.unload")}
                </Button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
