"""The code sandbox: run a model-written Python program against trusted tests and get a verdict that
the program cannot forge, under limits that hold for the program as a whole.

`run_program(program, tests, limits) -> Verdict` is the whole API (with `Limits`, `check_sandbox`
and `parse_tests`). The child is `program.py`, a stdlib-only module run by path; the host side is
`host.py` (one run) and `uids.py` (the uid pool as root). docs/rewards.md says what is isolated where.
"""

from grpo_rlvr.sandbox.host import Limits, Verdict, check_sandbox, parse_tests, run_program

__all__ = ["Limits", "Verdict", "check_sandbox", "parse_tests", "run_program"]
