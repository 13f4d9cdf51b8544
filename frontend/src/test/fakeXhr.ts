/** A stand-in for XMLHttpRequest (which uploads use for their progress): answers each request sent. */
import { vi } from "vitest";

export interface SentUpload {
  method: string;
  url: string;
  body: FormData;
  headers: Record<string, string>;
}

export type Answer = (request: SentUpload) => { status: number; body: unknown };

/** Replace XMLHttpRequest: each request reports its upload as complete, then gets `answer`'s reply. */
export function installXhr(answer: Answer): SentUpload[] {
  const sent: SentUpload[] = [];

  class FakeXhr {
    readonly upload: {
      onprogress: ((event: { lengthComputable: boolean; loaded: number; total: number }) => void) | null;
    } = { onprogress: null };
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    onabort: (() => void) | null = null;
    responseType = "";
    responseText = "";
    status = 0;
    private method = "";
    private url = "";
    private headers: Record<string, string> = {};
    private aborted = false;

    open(method: string, url: string) {
      this.method = method;
      this.url = url;
    }

    setRequestHeader(name: string, value: string) {
      this.headers[name] = value;
    }

    send(body: FormData) {
      const request = { method: this.method, url: this.url, body, headers: this.headers };
      sent.push(request);
      setTimeout(() => {
        if (this.aborted) return;
        this.upload.onprogress?.({ lengthComputable: true, loaded: 1, total: 1 });
        const reply = answer(request);
        this.status = reply.status;
        this.responseText = JSON.stringify(reply.body);
        this.onload?.();
      }, 1);
    }

    abort() {
      this.aborted = true;
      this.onabort?.();
    }
  }

  vi.stubGlobal("XMLHttpRequest", FakeXhr);
  return sent;
}
