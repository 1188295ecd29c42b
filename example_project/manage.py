#!/usr/bin/env python
"""Django's command-line utility for the example project.

Run it from anywhere, e.g. from the repository root::

    python example_project/manage.py demo
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    # Always this project's settings (``--settings`` still overrides): a DJANGO_SETTINGS_MODULE
    # left in the shell for another project must not silently take over the demo.
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
