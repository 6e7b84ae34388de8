"""Dataset readers, one file per on-disk format (registered in ``oodlab.data.DATASETS``)."""
