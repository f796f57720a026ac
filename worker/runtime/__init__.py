"""Where the model runs: the runner, the device and its precision, the hardware probe and
the torch builds that run on it, the map-to-mask maths. Below the engine, beside models."""
