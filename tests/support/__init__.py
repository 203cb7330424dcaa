"""Helpers for kengine's tests: independent read-back of topics and polling waits."""
