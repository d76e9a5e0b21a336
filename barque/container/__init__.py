"""Containers: records, lifecycle (create/start/stop/kill/rm), the per-container monitor, logs, exec and volumes."""
