/** Find the `[n]` citations in an answer so they can be rendered as links to their sources. */

export type Segment = { kind: "text"; text: string } | { kind: "cite"; number: number };

// "[1]", "[1, 2]" and "[1,2,3]"; "[1][2]" is two matches.
const CITATION = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

/**
 * Split `text` into plain text and citations. Only numbers in `known` become citations: a bracket
 * that cites nothing we have (or a number that is not a source) stays text, exactly as written.
 */
export function splitCitations(text: string, known: ReadonlySet<number>): Segment[] {
  const segments: Segment[] = [];
  let pending = "";
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    const numbers = match[1]!.split(",").map((part) => Number(part.trim()));
    if (!numbers.some((n) => known.has(n))) continue;
    pending += text.slice(last, match.index);
    last = match.index + match[0].length;
    for (const n of numbers) {
      if (known.has(n)) {
        if (pending) segments.push({ kind: "text", text: pending });
        pending = "";
        segments.push({ kind: "cite", number: n });
      } else {
        pending += `[${n}]`;
      }
    }
  }
  pending += text.slice(last);
  if (pending) segments.push({ kind: "text", text: pending });
  return segments;
}

/** Source numbers cited in `text`, in order of first use. */
export function citedNumbers(text: string, known: ReadonlySet<number>): number[] {
  const seen: number[] = [];
  for (const segment of splitCitations(text, known)) {
    if (segment.kind === "cite" && !seen.includes(segment.number)) seen.push(segment.number);
  }
  return seen;
}
