"""TF Serving's SSL config file: TLS for the gRPC API.

  server_key: "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"
  server_cert: "-----BEGIN CERTIFICATE-----\\n...\\n-----END CERTIFICATE-----\\n"
  custom_ca: "-----BEGIN CERTIFICATE-----\\n...\\n-----END CERTIFICATE-----\\n"
  client_verify: true

The text format of `tensorflow.serving.SSLConfig` (`serving.config_text` declares it, as the
tensorflow-serving-api package does not ship it). As in TF Serving the fields hold the PEM
text itself, not file names: the server's private key and certificate chain; `custom_ca`, the
certificates that client certificates must chain to; `client_verify`, whether a client must
present such a certificate (TLS with client authentication) or need present none.
"""

import grpc

from . import config_text

_FIELD = config_text.FIELD
_SSLConfig = config_text.message_class(
    "tensorflow_serving/config/ssl_config.proto",
    {"SSLConfig": [("server_key", 1, _FIELD.TYPE_STRING, None),
                   ("server_cert", 2, _FIELD.TYPE_STRING, None),
                   ("custom_ca", 3, _FIELD.TYPE_STRING, None),
                   ("client_verify", 4, _FIELD.TYPE_BOOL, None)]},
    "SSLConfig")


def server_credentials(path):
  """The gRPC server credentials the config file at `path` describes.

  Raises:
    ValueError: naming the file and what is wrong with it.
  """
  config = config_text.read(path, _SSLConfig)
  missing = [name for name in ("server_key", "server_cert") if not getattr(config, name)]
  if missing:
    raise ValueError(f"{path}: {' and '.join(missing)} must hold PEM text.")
  if config.client_verify and not config.custom_ca:
    raise ValueError(f"{path}: client_verify needs custom_ca, the certificates that client "
                     "certificates must chain to.")
  try:
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify)
  except (RuntimeError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from None
