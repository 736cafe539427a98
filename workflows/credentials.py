"""The environment variables that hold the submitting client's credentials. `submit` reads
them; nothing else needs them, so the local runner removes them from the environment of
every step and server it starts."""

from collections.abc import Mapping

ARGO_TOKEN = "ARGO_TOKEN"  # a bearer token of the Argo Server
IAP_CLIENT_SECRET = "ARGO_IAP_CLIENT_SECRET"  # the IAP desktop client's secret
IAP_REFRESH_TOKEN = "ARGO_IAP_REFRESH_TOKEN"  # its refresh token
CLIENT_CREDENTIALS = (ARGO_TOKEN, IAP_CLIENT_SECRET, IAP_REFRESH_TOKEN)


def without_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the client's credentials: what a local container inherits."""
    return {k: v for k, v in env.items() if k not in CLIENT_CREDENTIALS}
