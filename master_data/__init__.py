"""The golden citizen record: identity as the portal knows it, normalisation, references.

Pure logic with no dependency on ``hub``; persistence and matching arrive with the golden-record
issue. Today it provides the citizen identity schema every flow shares and the pseudonymous
citizen reference the journal uses instead of personal data.
"""
