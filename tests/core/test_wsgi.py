"""The web process keeps what it loaded at start out of the garbage collector's walks."""

from __future__ import annotations

import subprocess
import sys


def test_the_web_application_freezes_its_startup_objects_for_the_collector():
    probe = (
        "import gc\n"
        "before = gc.get_freeze_count()\n"
        "import rapport.wsgi\n"
        "print(before, gc.get_freeze_count(), callable(rapport.wsgi.application))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert out[0] == "0"
    assert int(out[1]) > 10_000  # Django, the apps, their views and schemas
    assert out[2] == "True"
