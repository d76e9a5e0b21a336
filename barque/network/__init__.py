"""Container networking: bridge networks, veths, IPAM, NAT and published ports, links, embedded DNS (see each
module's docstring; `manage.py` and `sandbox.py` are the verbs)."""
