"""`grpo-rlvr launch`: from the /opt/ml contract to one training process, or to `accelerate launch`.

- `entrypoint`: `main`, one attempt under the run lock, the failure file and the exit code.
- `planning`: the recipe, overrides, processes and accelerate config a launch decides on, validated.
- `processes`: `accelerate launch` on this host, the hosts' addresses and communication variables,
  SIGTERM forwarded to the process group.
- `logs`: the redacted output and logs, and the error a failed training process printed.
"""
