"""The asset chain: raw_images -> processed_dataset -> fid_reference / trained_generator ->
generator_evaluation -> pruned_generator -> onnx_generator. Each asset is thin: it calls ganlib."""
