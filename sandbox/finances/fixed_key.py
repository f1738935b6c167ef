"""The sandbox finance server's fixed host key, for ``python -m sandbox`` and the default config.

Sandbox only: it is public (it is in the repository), so it proves nothing about a real server.
``config/hub.yaml`` pins it by default for ``sftp://...@127.0.0.1:8104``; a deployment sets
``HUB_FINANCES_KNOWN_HOSTS`` to its finance server's real key line. Tests generate fresh keys.
"""

from __future__ import annotations

import io

import paramiko

PEM = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz
c2gtZWQyNTUxOQAAACDFEzZBzKu/9dw0Q14D1sRX9sMEj3pFKoB1tODoOcA2MQAA
AIilIYC8pSGAvAAAAAtzc2gtZWQyNTUxOQAAACDFEzZBzKu/9dw0Q14D1sRX9sME
j3pFKoB1tODoOcA2MQAAAECZ8NlcJvph0RqKq5+jZmmWbpA9HruDeyTB2OxN5cAv
tMUTNkHMq7/13DRDXgPWxFf2wwSPekUqgHW04Og5wDYxAAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
"""


def sandbox_host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key(file_obj=io.StringIO(PEM))
