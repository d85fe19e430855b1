"""Shipped data: the environment suite (envs/) and agent presets (agents/) of the repository."""
