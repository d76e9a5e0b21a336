"""The `barque` command line: parse input, call the engine, render output, map errors (in one place)."""
