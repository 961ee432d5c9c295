"""Sub-commands of the ``her2radiomics`` CLI (see her2radiomics.cli)."""
