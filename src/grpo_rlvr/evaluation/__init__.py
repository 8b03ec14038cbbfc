"""Evaluation that can be trusted (GSM8K, HumanEval), one module per job.

- `evaluate`: `evaluate_examples`, the API the CLI and end-of-training evaluation both call, and the
  inputs the CLI reads (shot counts, examples, the output folder).
- `models`: a model (plus adapter) to evaluate, checked before it loads; its tokenizer, weights, prompts.
- `generation`: the backends (`HFGenerator`, `VLLMGenerator`) and the settings they all decode with.
- `scoring`: accuracy with 95% Wilson intervals, trained - base with the paired McNemar test.
- `reports`: the Markdown table and the accuracy-vs-shots plot.
"""
