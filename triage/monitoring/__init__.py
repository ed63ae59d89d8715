"""Verify and guard the promise in production: audits, live precision, drift watch."""
