"""Media I/O: frame tensors, images, video decode (source) and encode (sink), colour."""
