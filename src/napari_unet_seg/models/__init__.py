"""Built-in model files (safetensors), found by name."""
