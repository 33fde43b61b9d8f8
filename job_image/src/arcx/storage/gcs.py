"""Re-export: the Google Cloud Storage backend lives in ``arcx_store.backends.gcs``."""

from arcx_store.backends.gcs import GCSStorage, make_client, parse_gs_uri

# The gs:// model cache (arcx.model.sources) builds its client with the store's settings.
_make_client = make_client

__all__ = ["GCSStorage", "make_client", "parse_gs_uri"]
