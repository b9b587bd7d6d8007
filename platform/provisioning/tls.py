"""TLS for the HTTPS servers and the HTTPS client: TLS 1.2 or newer, certificates verified."""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import SettingsError
from .settings import TlsSettings


def server_tls(settings: TlsSettings) -> dict[str, str]:
    """Sanic's ``ssl=`` argument. Sanic builds the context in each worker process
    (TLS 1.2 minimum, forward-secret ciphers only), so a dict of paths is what crosses
    the process boundary rather than an unpicklable ``SSLContext``."""
    for variable, path in (("TLS_CERT_FILE", settings.cert_file), ("TLS_KEY_FILE", settings.key_file)):
        if not path.is_file():
            raise SettingsError(variable, f"names {path}, which does not exist (run task certs)")
    return {"cert": str(settings.cert_file), "key": str(settings.key_file)}


def client_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies the server's certificate and host name against the project's CA."""
    if not ca_file.is_file():
        raise SettingsError("TLS_CA_FILE", f"names {ca_file}, which does not exist (run task certs)")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
