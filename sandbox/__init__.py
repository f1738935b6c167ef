"""Simulated municipal back-ends speaking the real protocols over loopback.

This package imports nothing of the hub: it plays the outside world for the demo and the tests.
"""
