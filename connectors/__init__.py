"""Protocol adapters and municipal system connectors.

Nothing here imports ``hub``: the journal, the clock and settings reach connectors as the small
interfaces defined in :mod:`connectors.exchange`, and ``hub`` passes the real ones in.
"""
