"""The network and its file: U-Net, safetensors + JSON model files, the model registry, devices.

The lowest layer of the core: nothing here knows about images, tiling or training.
"""
