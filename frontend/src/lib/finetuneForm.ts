/**
 * The start form of a fine-tuning job, derived from `GET /api/finetune/options`: one input per recipe
 * field with the server's default, and the job request built back from what was typed.
 *
 * The request carries only what differs from the defaults (plus the model and method, so that the job
 * record names them): the server fills in the rest with the same defaults the CLI uses, and a field
 * the server lists but a user never touches cannot be refused.
 */
import type { FinetuneJobRequest, OptionValue, RecipeOption, RecipeOptions } from "./types";

export type Section = keyof RecipeOptions;
export const SECTIONS: readonly Section[] = ["train", "data", "governor", "eval"];

/** Where each section's fields go in the job request (train fields sit at its top level). */
const REQUEST_KEY: Record<Exclude<Section, "train">, "data_options" | "governor" | "eval"> = {
  data: "data_options",
  governor: "governor",
  eval: "eval",
};

/** The fields shown before the "advanced" disclosure, in this order. */
export const MAIN_FIELDS = ["model", "method", "epochs", "max_steps", "lr", "lora_r", "micro_batch_size", "grad_accum"];
/** Sent even when left at their default, so that the job says what it trains. */
const ALWAYS_SENT = new Set(["model", "method"]);

export type FieldKind = "int" | "float" | "bool" | "list" | "choice" | "text";

export interface FormField {
  section: Section;
  option: RecipeOption;
  kind: FieldKind;
  /** Empty means null (no limit, detected, all...) rather than a missing value. */
  nullable: boolean;
}

/** The input's state: text for every kind but checkboxes. */
export type FieldInput = string | boolean;
export type FormValues = Record<string, FieldInput>;

export function fieldKey(field: Pick<FormField, "section" | "option">): string {
  return `${field.section}.${field.option.name}`;
}

function kindOf(option: RecipeOption): FieldKind {
  if (option.choices && option.choices.length > 0) return "choice";
  const type = option.type.toLowerCase();
  if (type.endsWith("[]")) return "list";
  if (type === "boolean") return "bool";
  if (type === "integer") return "int";
  if (type === "number") return "float";
  return "text";
}

// The options say null for "unset" (no limit, detected, all): such a field may be left empty.
function isNullable(option: RecipeOption): boolean {
  return option.default === null;
}

export function formFields(options: RecipeOptions): FormField[] {
  return SECTIONS.flatMap((section) =>
    (options[section] ?? []).map((option) => ({ section, option, kind: kindOf(option), nullable: isNullable(option) })),
  );
}

function inputOf(field: FormField, value: OptionValue): FieldInput {
  if (field.kind === "bool") return value === true;
  if (value === null) return "";
  return Array.isArray(value) ? value.join(",") : String(value);
}

/** Every field at the server's default. */
export function defaultValues(fields: FormField[]): FormValues {
  return Object.fromEntries(fields.map((field) => [fieldKey(field), inputOf(field, field.option.default)]));
}

export type Parsed = { value: OptionValue } | { error: "required" | "number" | "integer" | "choice" };

/** The value typed into a field, as the request sends it. */
export function parseField(field: FormField, input: FieldInput): Parsed {
  if (field.kind === "bool") return { value: input === true };
  const text = String(input).trim();
  if (text === "") return field.nullable ? { value: null } : { error: "required" };
  switch (field.kind) {
    case "int": {
      const value = Number(text);
      return Number.isInteger(value) ? { value } : { error: "integer" };
    }
    case "float": {
      const value = Number(text);
      return Number.isFinite(value) ? { value } : { error: "number" };
    }
    case "choice": {
      const choice = field.option.choices?.find((candidate) => String(candidate) === text);
      return choice === undefined ? { error: "choice" } : { value: choice };
    }
    case "list": {
      const items = text
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean);
      if (field.option.type === "string[]") return { value: items };
      const numbers = items.map(Number);
      const whole = field.option.type === "integer[]";
      return numbers.every((n) => (whole ? Number.isInteger(n) : Number.isFinite(n)))
        ? { value: numbers }
        : { error: whole ? "integer" : "number" };
    }
    default:
      return { value: text };
  }
}

function sameValue(a: OptionValue, b: OptionValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface BuiltRequest {
  request: FinetuneJobRequest;
  /** Field keys (`section.name`) whose input could not be read, with why. */
  errors: Record<string, Exclude<Parsed, { value: OptionValue }>["error"]>;
}

/** The job request for `values`; fields in `errors` are left out of it and must be fixed first. */
export function buildRequest(
  fields: FormField[],
  values: FormValues,
  datasetId: string,
  evalDatasetId: string | null,
): BuiltRequest {
  const request: FinetuneJobRequest = { dataset_id: datasetId, eval_dataset_id: evalDatasetId };
  const errors: BuiltRequest["errors"] = {};
  for (const field of fields) {
    const key = fieldKey(field);
    const parsed = parseField(field, values[key] ?? inputOf(field, field.option.default));
    if ("error" in parsed) {
      errors[key] = parsed.error;
      continue;
    }
    const { name } = field.option;
    const changed = !sameValue(parsed.value, field.option.default);
    if (field.section === "train") {
      if (changed || ALWAYS_SENT.has(name)) request[name] = parsed.value;
    } else if (changed) {
      const group = REQUEST_KEY[field.section];
      request[group] = { ...request[group], [name]: parsed.value };
    }
  }
  return { request, errors };
}
