"""`python -m barque.network.dns --root ROOT --run-root RUNROOT`: the embedded DNS server (see daemon.py)."""

from barque.network.dns.daemon import main

main()
