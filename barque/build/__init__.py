"""Dockerfile builds (issue 5): the language's word processing first; the builder itself follows."""
