"""Monitoring: signals from what the service receives, and the retrain decision built on them."""
