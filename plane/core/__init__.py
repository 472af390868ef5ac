"""Core machinery under the Dataset: manifests, refs, chunk reading and writing."""
