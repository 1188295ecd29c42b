"""``python -m django_pagero_oauth.testing.mock``: serve the mock until Ctrl-C (:mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
