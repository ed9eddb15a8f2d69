"""Policies: workflows and the action catalogue as YAML, guardrails, next-best-action, assignment, court lists.

Where scores become decisions; business thresholds live here, never in a model or the service.
"""
