/** Where a cited passage is, in the UI's language: `휴가규정.pdf · 3쪽`, `deck.pptx · slide 2`. */
import type { MessageKey, Translate } from "../../i18n";
import type { PageUnit, Source } from "../../lib/types";

const UNIT_KEYS: Record<PageUnit, { one: MessageKey; range: MessageKey }> = {
  page: { one: "source.page", range: "source.pages" },
  slide: { one: "source.slide", range: "source.slides" },
  sheet: { one: "source.sheet", range: "source.sheets" },
};

/** The file's name: `filename`, or the last part of `source` for answers saved before it was sent. */
export function sourceFile(source: Source): string {
  return source.filename || source.source.split("/").pop() || source.source;
}

/** The page, slide or sheet (`3쪽`, `3–4쪽`, `시트 2 ‘인건비’`), or null when the format has none. */
export function sourcePage(source: Source, t: Translate): string | null {
  const { page, page_end: end, page_label: label } = source;
  const keys = UNIT_KEYS[source.page_unit ?? "page"];
  const place = page ? (end && end > page ? t(keys.range, { from: page, to: end }) : t(keys.one, { n: page })) : null;
  if (!label) return place;
  return place ? t("source.named", { place, name: label }) : label;
}

/** File and page together, as a citation shows them. */
export function sourcePlace(source: Source, t: Translate): string {
  const page = sourcePage(source, t);
  return page ? `${sourceFile(source)} · ${page}` : sourceFile(source);
}
