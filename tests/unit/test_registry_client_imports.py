"""The registry client stays off the start-up path: `run` of a present image imports neither aiohttp nor rich."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from barque.cli import main, run
class Images:
    def lookup(self, ref):
        return object(), None
class Engine:
    images = Images()
run._ensure_image(Engine(), {"pull": "missing", "image": "busybox", "platform": None})
main.cli.get_command(None, "pull")  # the command module itself: click only
bad = sorted(m for m in ("aiohttp", "rich", "ssl", "bcrypt") if m in sys.modules)
print(",".join(bad))
"""


def test_run_with_a_present_image_imports_no_registry_client():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
