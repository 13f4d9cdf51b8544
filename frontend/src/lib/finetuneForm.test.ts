import { describe, expect, it } from "vitest";

import options from "../test/finetuneOptions.json";
import { buildRequest, defaultValues, fieldKey, formFields, parseField, type FormField } from "./finetuneForm";
import type { RecipeOptions } from "./types";

const fields = formFields(options as RecipeOptions);
const field = (key: string): FormField => fields.find((f) => fieldKey(f) === key)!;

describe("the start form's fields", () => {
  it("takes each field's kind and default from the options", () => {
    const values = defaultValues(fields);
    expect(values["train.model"]).toBe("K-intelligence/Midm-2.0-Mini-Instruct");
    expect(values["train.lr"]).toBe("0.0002");
    expect(values["train.max_steps"]).toBe("");
    expect(values["train.gradient_checkpointing"]).toBe(true);
    expect(values["governor.schedule"]).toBe("");
    expect(field("train.method").kind).toBe("choice");
    expect(field("train.micro_batch_size").kind).toBe("int");
    expect(field("train.target_modules").kind).toBe("list");
    expect(field("data.rating_scale").nullable).toBe(true);
    expect(field("train.epochs").nullable).toBe(false);
  });

  it("reads what was typed by the field's kind, and says what is wrong", () => {
    expect(parseField(field("train.max_steps"), "6")).toEqual({ value: 6 });
    expect(parseField(field("train.max_steps"), "")).toEqual({ value: null });
    expect(parseField(field("train.max_steps"), "6.5")).toEqual({ error: "integer" });
    expect(parseField(field("train.epochs"), "")).toEqual({ error: "required" });
    expect(parseField(field("train.lr"), "1e-4")).toEqual({ value: 0.0001 });
    expect(parseField(field("train.lr"), "fast")).toEqual({ error: "number" });
    expect(parseField(field("data.rating_scale"), "5")).toEqual({ value: 5 });
    expect(parseField(field("train.method"), "full")).toEqual({ error: "choice" });
    expect(parseField(field("train.target_modules"), "q_proj, v_proj,")).toEqual({ value: ["q_proj", "v_proj"] });
    expect(parseField(field("eval.ratings"), "1,10")).toEqual({ value: [1, 10] });
    expect(parseField(field("eval.ratings"), "1,ten")).toEqual({ error: "integer" });
  });

  it("sends the model, the method and what differs from the defaults, each in its group", () => {
    const values = {
      ...defaultValues(fields),
      "train.max_steps": "6",
      "train.micro_batch_size": "2",
      "data.max_examples": "500",
      "governor.schedule": "22:00-08:00",
      "governor.max_cpu_load": "0.5",
      "eval.per_rating": "2",
    };
    const { request, errors } = buildRequest(fields, values, "ds1", "ds2");
    expect(errors).toEqual({});
    expect(request).toEqual({
      dataset_id: "ds1",
      eval_dataset_id: "ds2",
      model: "K-intelligence/Midm-2.0-Mini-Instruct",
      method: "lora",
      max_steps: 6,
      micro_batch_size: 2,
      data_options: { max_examples: 500 },
      governor: { schedule: "22:00-08:00", max_cpu_load: 0.5 },
      eval: { per_rating: 2 },
    });
  });

  it("names the fields it cannot read instead of sending them", () => {
    const values = { ...defaultValues(fields), "train.lr": "", "governor.duty_cycle": "half" };
    const { request, errors } = buildRequest(fields, values, "ds1", null);
    expect(errors).toEqual({ "train.lr": "required", "governor.duty_cycle": "number" });
    expect(request).not.toHaveProperty("lr");
    expect(request).not.toHaveProperty("governor");
  });
});
