"""Data: raw sources (``sources``, with ``torchvision_source`` and ``s3_source``) and per-file validation
(``validate``), DVC's preprocess stage (``preprocess``), and the processed-shard format the trainer reads
(``shards``)."""
