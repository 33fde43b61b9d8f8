"""Developer and test tooling (not shipped): the local control plane lives in hack.cluster."""
