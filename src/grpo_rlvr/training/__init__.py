"""GRPO training from a validated `RunConfig`, one module per job.

- `grpo`: the run itself, read top to bottom: data -> rewards -> model -> trainer -> train -> save -> summary.
- `rows`: the training and validation rows, with prompts; every dropped row reported by file:line.
- `model`: loading the policy (full precision or 4/8-bit for QLoRA) and the checks on its LoRA targets.
- `arguments`: the trainer's `GRPOConfig`, built once as a new object from the (unchanged) config.
- `generation`: where completions end: the recipe's end tokens and the stop rule (`StopAtAnswerTrainer`).
- `model_card`: the model cards (README.md) of every checkpoint and of the saved model name the base model.
- `callbacks`: checkpoint marking and rotation, the non-finite stop, the graceful stop on SIGTERM.
- `outputs`: `model_dir` (saving, merging, the finite-weight check), `run_summary.json`, evaluation at end.

Invariants the package keeps:
- Nothing that can be checked without a model fails after the model has loaded.
- Resuming uses the newest COMPLETE checkpoint in `output_dir` (`checkpoints.py`: a checkpoint counts
  once every process has finished writing it and the main process has listed its files in a marker).
  `save_total_limit` rotation runs only after the new checkpoint's marker is written and counts complete
  checkpoints only (`checkpoints.rotate`), so a kill at any point leaves at least one complete
  checkpoint; transformers' own rotation runs before any callback could mark the new one complete
  (on SageMaker a local delete deletes the S3 copy too).
- A NaN or infinite loss, gradient norm or trainable weight fails the run at the step it appears, and
  the saved weights are checked again before the model is published.
- SIGTERM sets a flag; at the next step end every process agrees to save a checkpoint and stop, and
  `run` raises `TrainingInterrupted` without writing a model (`callbacks.GracefulStop`).
- `model_dir` is written through a hidden staging folder and `run_summary.json` comes last: a model
  folder without that file is not a finished model.
- With `eval_at_end`, the main process then measures GSM8K accuracy on the validation rows with
  `evaluation.evaluate.evaluate_examples` (the code `grpo-rlvr evaluate` runs) in the run's prompt format
  and end tokens into `summary_dir/eval` and adds the accuracies to `run_summary.json`. Rows it cannot
  evaluate fail the run before the model loads; a failing evaluation fails the run but leaves the
  finished model and its summary in place.

Layout of `model_dir` for a LoRA/QLoRA run: the merged full model (config, safetensors, tokenizer,
generation config) at the top, loadable with `AutoModelForCausalLM.from_pretrained(model_dir)`, and the
adapter in `model_dir/adapter/`. A QLoRA adapter is merged into the base reloaded in `dtype` (bf16 on
GPU, fp32 on CPU), never into the 4-bit weights, which would round the update away. A full fine-tune
writes the model alone.
"""
