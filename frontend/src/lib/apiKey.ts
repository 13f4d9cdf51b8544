/**
 * The API key this browser sends, kept in localStorage so that it outlives a reload.
 *
 * Every request of `lib/api.ts` is signed with it. When the server answers 401 with an `auth_*`
 * code, `announceKeyNeeded` tells the key dialog (`components/Auth/ApiKeyDialog.tsx`) to ask for one.
 */

const STORAGE_KEY = "rag.apiKey";
export const KEY_NEEDED_EVENT = "rag:api-key-needed";
/** Why the dialog opens: the server wants a key, refused the one sent, or the user asked to change it. */
export type KeyPromptReason = "auth_required" | "auth_invalid" | "change";

const AUTH_CODES: ReadonlySet<string> = new Set(["auth_required", "auth_invalid"]);

export function readApiKey(): string | null {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage switched off (some private modes): the key then lives as long as the dialog's answer.
    return null;
  }
}

export function saveApiKey(key: string): void {
  window.localStorage.setItem(STORAGE_KEY, key.trim());
}

export function forgetApiKey(): void {
  window.localStorage.removeItem(STORAGE_KEY);
}

/** The `Authorization` header for the stored key, or none. */
export function authHeaders(): Record<string, string> {
  const key = readApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Whether a 401's code means "send (another) key". */
export function isAuthCode(status: number, code: string): boolean {
  return status === 401 && AUTH_CODES.has(code);
}

/** Ask the key dialog to open. */
export function announceKeyNeeded(reason: KeyPromptReason): void {
  window.dispatchEvent(new CustomEvent<KeyPromptReason>(KEY_NEEDED_EVENT, { detail: reason }));
}
