"""Recipes -> one validated, frozen `RunConfig`, before any model loads; one module per job.

- `loading`: a recipe file (a path or a baked name) plus overrides, read in two passes: the recipe
  schema first (no TRL import), then one `HfArgumentParser` over TRL's and our dataclasses.
- `checks`: what needs more than one setting, the reward registry or the file system, and the values
  derived once (prompt format, reward functions, default eval shots); `check_device`.
- `sections`: our data, reward and run dataclasses, `RunConfig`, `ConfigError`, the per-value checks.
"""
