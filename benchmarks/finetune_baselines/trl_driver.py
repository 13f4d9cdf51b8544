"""TRL ``SFTTrainer`` on the exported examples: run with the python of the TRL virtualenv.

The examples arrive tokenised, as ``input_ids`` with a ``completion_mask`` (0 on the prompt, 1 on
the reply), the form TRL takes for completion-only loss on pre-tokenised data. Everything else is
TRL's default way to train: ``packing=True`` with its default best-fit-decreasing strategy, which
makes training padding-free (each micro-batch is one flat sequence whose position ids restart at
every example), and its fused LM head, which projects only the positions that carry a label.
Set apart from TRL's defaults, to match `rag finetune train`: fp32, no gradient checkpointing,
the benchmark's LoRA, learning rate, warm-up, rows per micro-batch and row length.

    python trl_driver.py --examples FILE --model DIR --output DIR --threads N ...
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


def main() -> None:
    args = parse_args(__doc__)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    examples = read_examples(args.examples)
    dataset = Dataset.from_list(
        [
            {
                "input_ids": e["input_ids"],
                "completion_mask": [0] * e["prompt_len"]
                + [1] * (len(e["input_ids"]) - e["prompt_len"]),
            }
            for e in examples
        ]
    )
    config = SFTConfig(
        output_dir=str(args.output / "trainer"),
        max_length=args.row_tokens,
        packing=True,
        completion_only_loss=True,
        per_device_train_batch_size=args.rows_per_batch,
        gradient_accumulation_steps=1,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_ratio,  # a float below 1 is a share of the steps
        gradient_checkpointing=False,
        bf16=False,
        logging_steps=100000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    lora = lora_config(args)
    timer = CheckAndTime(examples)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model),
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(args.model),
        peft_config=lora,
        callbacks=[timer],
    )
    trainer.data_collator = timer.collate(trainer.data_collator)
    trainer.train()
    info = {
        "versions": versions("trl", "transformers", "peft", "torch"),
        "attention": trainer.model.config._attn_implementation,
        "padding_free": trainer.padding_free,
        "packing_strategy": config.packing_strategy,
    }
    write_result(args.output, timer, info)


if __name__ == "__main__":
    main()
