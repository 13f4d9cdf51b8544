"""Hugging Face ``Trainer`` + PEFT with ordinary padded batches, on the exported examples.

The plain recipe: one review per row, rows padded to the longest in the batch, labels -100 on
the prompt and the padding. It needs only torch, transformers and peft, so the benchmark runs it
with the project's own python.

    python hf_padded_driver.py --examples FILE --model DIR --output DIR --threads N ...
"""

from __future__ import annotations

from driver_common import (
    CheckAndTime,
    lora_config,
    parse_args,
    read_examples,
    versions,
    write_result,
)

# About as many positions per batch, once padded, as the packed trainers' micro-batches hold.
REVIEWS_PER_BATCH = 16


def main() -> None:
    args = parse_args(__doc__)
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    examples = read_examples(args.examples)
    features = [
        {
            "input_ids": e["input_ids"],
            "labels": [-100] * e["prompt_len"] + e["input_ids"][e["prompt_len"] :],
        }
        for e in examples
    ]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lora = lora_config(args)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(args.model), lora)
    config = TrainingArguments(
        output_dir=str(args.output / "trainer"),
        per_device_train_batch_size=REVIEWS_PER_BATCH,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_ratio,  # a float below 1 is a share of the steps
        logging_steps=100000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    timer = CheckAndTime(examples, packed=False)
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(
        model=model,
        args=config,
        train_dataset=features,
        data_collator=timer.collate(pad),
        callbacks=[timer],
    )
    trainer.train()
    write_result(
        args.output, timer, {"versions": versions("transformers", "peft", "torch")}
    )


if __name__ == "__main__":
    main()
