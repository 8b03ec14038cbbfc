"""How every command's `--help` reads: descriptions as written, and each option's default shown.

Standard library only, so the job scripts use it from a plain checkout.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; an option with a default worth stating says it.

    argparse's own ArgumentDefaultsHelpFormatter also prints "(default: None)" and "(default: False)",
    which say nothing; those and help texts that already name their default are left as they are.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        silent = (
            default is None or default is False or default in (argparse.SUPPRESS, []) or "default" in text
        )
        if silent or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"
