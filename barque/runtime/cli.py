"""`barque-runtime`: the OCI runtime command line (create/start/state/kill/delete…), built by the runtime issue."""

import sys


def main() -> None:
    print("barque-runtime: not implemented yet (the runtime issue builds it)", file=sys.stderr)
    sys.exit(1)
