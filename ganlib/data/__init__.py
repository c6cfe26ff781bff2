"""Data: raw sources and validation (``sources``), DVC's preprocess stage (``preprocess``), and the
processed-shard format the trainer reads (``shards``)."""
